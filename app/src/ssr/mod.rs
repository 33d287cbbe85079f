//! Server-only code: the application state, database helpers, the integration ledger's enqueue
//! side, accounts, sessions, audit and email composition. Compiled only with the `ssr` feature.

pub mod audit;
pub mod auth;
pub mod booking;
pub mod catcher_store;
pub mod crm;
pub mod db;
pub mod documents;
pub mod email;
pub mod ledger;
pub mod map;
pub mod payments;
pub mod privacy;
pub mod sessions;
pub mod standins;
pub mod state;
pub mod totp;

pub use state::{AppState, PortalSettings, state};
