//! Who is calling: the signed-in user of this request, looked up once per page render, and the
//! checks every server function starts with. The only part of accounts that needs Leptos (the
//! request's context); the rules themselves are in `domain::auth`.

use domain::auth::{UserRecord, user_for_session};
use domain::sessions::USER_ID_KEY;
use model::Role;
use model::error::AppError;
use tower_sessions::Session;

use crate::ssr::state;

/// The signed-in user of one page render, looked up once: the layout and the page (and any
/// nested data) all ask for it, concurrently, and share the first answer while the session still
/// names the same user. Provided by the shell, so only page renders use it; a server function
/// called over HTTP (where sign-in, sign-out and profile changes happen) reads the database.
#[derive(Clone, Default)]
pub struct UserMemo(std::sync::Arc<tokio::sync::Mutex<Option<Looked>>>);

/// The session's user id and the user it named, as looked up.
type Looked = (Option<i64>, Option<UserRecord>);

/// Makes [`current_user`] look the user up once for the rest of this render.
pub fn provide_user_memo() {
    leptos::prelude::provide_context(UserMemo::default());
}

/// The signed-in user for this request, if any. A deactivated user's session is ended here, on
/// their next request.
pub async fn current_user() -> Result<Option<UserRecord>, AppError> {
    let memo = leptos::prelude::use_context::<UserMemo>();
    let db = state().db.clone();
    let Ok(session) = leptos_axum::extract::<Session>().await else {
        return Ok(None);
    };
    let Some(memo) = memo else {
        return user_for_session(&db, &session).await;
    };
    // Held across the lookup: a concurrent caller waits for it and reuses the answer.
    let mut cached = memo.0.lock().await;
    let uid = session
        .get::<i64>(USER_ID_KEY)
        .await
        .map_err(|_| AppError::Internal)?;
    if let Some((for_uid, user)) = cached.as_ref()
        && *for_uid == uid
    {
        return Ok(user.clone());
    }
    let user = user_for_session(&db, &session).await?;
    *cached = Some((uid, user.clone()));
    Ok(user)
}

/// The signed-in user, or 401. Staff and admins without a second factor get 403 and are sent
/// to set it up.
pub async fn require_user() -> Result<UserRecord, AppError> {
    let user = require_user_during_setup().await?;
    if user.password_change_required {
        return Err(AppError::PasswordChangeRequired);
    }
    if user.needs_second_factor_setup() {
        return Err(AppError::SecondFactorRequired);
    }
    Ok(user)
}

/// The signed-in user, even one who still has to set up a second factor (for the setup itself).
pub async fn require_user_during_setup() -> Result<UserRecord, AppError> {
    current_user().await?.ok_or(AppError::Unauthenticated)
}

/// The signed-in user if they hold `role` (admins hold every role); anyone else gets 404, so
/// the route does not even admit it exists.
pub async fn require_role(role: Role) -> Result<UserRecord, AppError> {
    let user = current_user().await?;
    match user {
        Some(u) if u.role == role || u.role == Role::Admin => {
            if u.password_change_required {
                return Err(AppError::PasswordChangeRequired);
            }
            if u.needs_second_factor_setup() {
                return Err(AppError::SecondFactorRequired);
            }
            Ok(u)
        }
        Some(_) => Err(AppError::NotFound),
        None => Err(AppError::Unauthenticated),
    }
}
