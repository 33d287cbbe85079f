//! The one state object shared by axum handlers and server functions, provided to every server
//! function and page render as Leptos context.

use std::sync::Arc;

use domain::Portal;
use domain::ports::StandinConsole;
use leptos::config::LeptosOptions;

/// Shared state. Cheap to clone. Derefs to the domain's [`Portal`] (database, settings, ports).
#[derive(Clone, axum::extract::FromRef)]
pub struct AppState {
    /// Leptos' own options (site root, output name, address).
    pub leptos_options: LeptosOptions,
    /// The running portal: database, settings and one implementation of each port.
    pub portal: Portal,
    /// The controls of the embedded stand-ins (their fault switches and the mail catcher's
    /// mailbox), present only when at least one runs: the admin's stand-ins page uses it. No
    /// port implementation knows whether it talks to a stand-in.
    pub standins: Option<Arc<dyn StandinConsole>>,
}

impl std::ops::Deref for AppState {
    type Target = Portal;
    fn deref(&self) -> &Portal {
        &self.portal
    }
}

/// The state, from inside a server function or component rendered on the server.
pub fn state() -> AppState {
    leptos::prelude::expect_context::<AppState>()
}
