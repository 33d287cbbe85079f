//! The one error type that crosses the server-function boundary. Each variant says what the user
//! sees; internal causes are logged on the server with the request id and never sent.

use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

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

#[cfg(feature = "server")]
mod server_impls {
    use super::AppError;

    /// A database failure is the portal's fault: logged (inside the span of the domain operation
    /// that failed) and answered with a generic message.
    impl From<sea_orm::DbErr> for AppError {
        fn from(err: sea_orm::DbErr) -> Self {
            tracing::error!(error = %err, "database error");
            AppError::Internal
        }
    }
}
