//! Sign-in, sign-out, sign-up and email verification.

use leptos::prelude::*;

use model::error::AppError;

/// Signs in and redirects to `next` (a path inside the portal) or the user's home.
#[server(prefix = "/api", endpoint = "sign_in")]
pub async fn sign_in(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::auth;
    let session = leptos_axum::extract::<tower_sessions::Session>()
        .await
        .map_err(|_| AppError::Internal)?;
    let next = next.filter(|n| is_local_path(n));
    match auth::sign_in(
        &state().db,
        &session,
        &email,
        secrecy::SecretString::from(password),
    )
    .await?
    {
        auth::SignedIn::NeedsCode(_) => {
            let q = next
                .map(|n| format!("?next={}", encode_query(&n)))
                .unwrap_or_default();
            leptos_axum::redirect(&format!("/signin/verify{q}"));
        }
        auth::SignedIn::Done(user) => {
            leptos_axum::redirect(&next.unwrap_or_else(|| home_of(&user).into()))
        }
    }
    Ok(())
}

/// The second step of signing in: a code from the authenticator app, or a recovery code.
#[server(prefix = "/api", endpoint = "verify_sign_in_code")]
pub async fn verify_sign_in_code(code: String, next: Option<String>) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::auth;
    let session = leptos_axum::extract::<tower_sessions::Session>()
        .await
        .map_err(|_| AppError::Internal)?;
    let user = auth::verify_second_factor(&state().db, &session, &code).await?;
    leptos_axum::redirect(
        &next
            .filter(|n| is_local_path(n))
            .unwrap_or_else(|| home_of(&user).into()),
    );
    Ok(())
}

#[cfg(feature = "ssr")]
fn home_of(user: &domain::auth::UserRecord) -> &'static str {
    use model::Role;
    if user.password_change_required {
        return "/account";
    }
    if user.needs_second_factor_setup() {
        return "/account/security";
    }
    match user.role {
        Role::Admin => "/admin",
        Role::Staff | Role::Customer => "/account",
    }
}

/// A path inside the portal (not `//host` or a full URL), safe to redirect to.
pub fn is_local_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && !p.contains("://")
}

#[cfg(feature = "ssr")]
fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Signs out: the session is deleted on the server.
#[server(prefix = "/api", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::audit;
    if let Some(u) = crate::ssr::guard::current_user().await? {
        audit::record(
            &state().db,
            Some(u.id),
            "auth.signout",
            "user",
            &u.id.to_string(),
            "signed out",
        )
        .await?;
    }
    if let Ok(session) = leptos_axum::extract::<tower_sessions::Session>().await {
        session.flush().await.map_err(|_| AppError::Internal)?;
    }
    leptos_axum::redirect("/");
    Ok(())
}

/// Creates a customer account and sends the verification email. The answer is the same whether
/// or not the email already has an account (the existing owner gets a notice instead), so the
/// form cannot be used to find out who is a customer.
#[server(prefix = "/api", endpoint = "sign_up")]
pub async fn sign_up(
    name: String,
    email: String,
    phone: Option<String>,
    password: String,
    accept_privacy: Option<String>,
    marketing: Option<String>,
) -> Result<(), AppError> {
    use crate::ssr::state;
    use domain::auth;
    let st = state();
    let name = auth::parse_name(&name)?;
    let email = auth::parse_email(&email)?;
    let phone = auth::parse_phone(phone.as_deref())?;
    if accept_privacy.as_deref() != Some("on") {
        return Err(AppError::Invalid(
            "Please read and accept the privacy notice to create an account.".into(),
        ));
    }
    auth::check_new_password(&password, &[&name, &email])?;
    let hash = auth::hash_password(secrecy::SecretString::from(password)).await?;
    let marketing = marketing.as_deref() == Some("on");
    domain::account::sign_up(&st.db, &st.settings, name, email, phone, hash, marketing).await?;
    leptos_axum::redirect("/signup/done");
    Ok(())
}

/// Confirms an email address with the token from the verification email.
#[server(prefix = "/api", endpoint = "verify_email")]
pub async fn verify_email(token: String) -> Result<(), AppError> {
    use crate::ssr::state;
    let st = state();
    domain::account::verify_email(&st.db, &st.settings, &token).await?;
    leptos_axum::redirect("/signin?verified=1");
    Ok(())
}
