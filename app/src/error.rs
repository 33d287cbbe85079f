//! The one error type that crosses the server-function boundary. Each variant says what the user
//! sees; internal causes are logged on the server with the request id and never sent.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// 400: the input is wrong; the message says how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// 401: the page needs a signed-in user.
    #[error("Please sign in to continue.")]
    Unauthenticated,
    /// 403: signed in with a one-time password, which must be replaced first.
    #[error("Choose your own password to continue: the one you signed in with works only once.")]
    PasswordChangeRequired,
    /// 403: staff and admins must set up two-step verification first.
    #[error(
        "Set up two-step verification to continue: it protects the customer data your account can reach."
    )]
    SecondFactorRequired,
    /// 404: missing, or not the caller's to see (never a hint that it exists).
    #[error("We couldn't find that.")]
    NotFound,
    /// 409: the request conflicts with the current state; the message says what happened.
    #[error("{0}")]
    Conflict(String),
    /// 429: too many attempts.
    #[error("{0}")]
    RateLimited(String),
    /// 503: another system the action needs (the payment provider, storage) is unreachable;
    /// nothing was lost and the message says what to do.
    #[error("{0}")]
    Unavailable(String),
    /// 500: our fault. The cause is in the server log with the request id.
    #[error("Something went wrong on our side. Please try again in a moment.")]
    Internal,
    /// The request did not reach the server function (network, decoding).
    #[error("We couldn't reach the portal: {0}")]
    Transport(String),
}

impl AppError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Invalid(_) => 400,
            AppError::Unauthenticated => 401,
            AppError::SecondFactorRequired | AppError::PasswordChangeRequired => 403,
            AppError::NotFound => 404,
            AppError::Conflict(_) => 409,
            AppError::RateLimited(_) => 429,
            AppError::Unavailable(_) => 503,
            AppError::Internal | AppError::Transport(_) => 500,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

#[cfg(feature = "ssr")]
mod ssr_impls {
    use super::AppError;

    impl From<sea_orm::DbErr> for AppError {
        fn from(err: sea_orm::DbErr) -> Self {
            tracing::error!(error = %err, "database error");
            AppError::Internal
        }
    }

    impl From<crate::ssr::ledger::ActionError> for AppError {
        fn from(err: crate::ssr::ledger::ActionError) -> Self {
            use crate::ssr::ledger::ActionError;
            match err {
                ActionError::NotFound => AppError::NotFound,
                ActionError::NotAllowed(m) => AppError::Conflict(m),
                ActionError::Db(e) => e.into(),
            }
        }
    }
}

/// Sets the response status for `err` (on the server) and returns it, for `map_err`. A plain
/// HTML form post (JavaScript off) is answered with a redirect back to the form carrying the
/// error, so its status is left alone.
pub fn respond(err: AppError) -> AppError {
    #[cfg(feature = "ssr")]
    let form_post = leptos::prelude::use_context::<http::request::Parts>()
        .filter(|p| p.method == http::Method::POST)
        .and_then(|p| {
            p.headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.contains("text/html"))
        })
        .unwrap_or(false);
    #[cfg(feature = "ssr")]
    if form_post {
        return err;
    }
    #[cfg(feature = "ssr")]
    if let Some(opts) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(code) = http::StatusCode::from_u16(err.status()) {
            opts.set_status(code);
        }
    }
    err
}
