//! Accounts: password hashing, sign-in, the current user, roles, one-time tokens.
//!
//! Passwords are hashed with Argon2id at OWASP's parameters (19 MiB, t=2, p=1) on a blocking
//! thread. Sign-in runs the same hash work for unknown emails (against a fixed dummy hash) and
//! gives one answer for both, so neither the message nor the timing tells whether an account
//! exists. Hashes below the current parameters are upgraded at the next sign-in.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use crate::audit;
use crate::db::{self, col, now_ms};
pub use crate::records::{UserRecord, find_user, find_user_by_email};
use crate::sessions::USER_ID_KEY;
pub use crate::tokens::{hash_token, new_token};
use model::error::AppError;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (well above the 64 that must be allowed; bounds hashing cost).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// zxcvbn score a password must reach (0-4): 3 means "safely unguessable" against online attacks.
pub const MIN_PASSWORD_SCORE: u8 = 3;

fn argon2() -> Argon2<'static> {
    // m = 19456 KiB, t = 2, p = 1: ASVS 5 / OWASP minimum for Argon2id.
    let params = Params::new(19_456, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password on a blocking thread.
#[tracing::instrument(skip_all)]
pub async fn hash_password(password: SecretString) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|_| AppError::Internal)?;
        argon2()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| AppError::Internal)
    })
    .await
    .map_err(|_| AppError::Internal)?
}

/// A valid Argon2id hash of a random string, verified against when the account is unknown so
/// that unknown and known accounts cost the same.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$R8a5lA0n3JxJmR6hdQ6GQX0TX3nQhGzXcEGW7mIWoJ8";

/// Outcome of checking a password.
pub struct Verified {
    pub ok: bool,
    /// True when the stored hash uses weaker parameters than today's and should be replaced.
    pub needs_rehash: bool,
}

/// Verifies `password` against `stored` (or the dummy hash when `None`) on a blocking thread.
#[tracing::instrument(skip_all)]
pub async fn verify_password(stored: Option<String>, password: SecretString) -> Verified {
    let known = stored.is_some();
    let hash = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return Verified {
                ok: false,
                needs_rehash: false,
            };
        };
        let ok = argon2()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok()
            && known;
        let current = Params::try_from(&parsed)
            .map(|p| {
                p.m_cost() >= 19_456 && p.t_cost() >= 2 && parsed.algorithm.as_str() == "argon2id"
            })
            .unwrap_or(false);
        Verified {
            ok,
            needs_rehash: ok && !current,
        }
    })
    .await
    .unwrap_or(Verified {
        ok: false,
        needs_rehash: false,
    })
}

/// Checks a new password against the rules: length and a strength estimate (zxcvbn), with the
/// user's own name and email as context so "jolene2026" is refused for Jolene.
pub fn check_new_password(password: &str, user_inputs: &[&str]) -> Result<(), AppError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(AppError::Invalid(format!(
            "Use at least {MIN_PASSWORD_CHARS} characters for your password."
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(AppError::Invalid(format!(
            "Use at most {MAX_PASSWORD_CHARS} characters for your password."
        )));
    }
    let estimate = zxcvbn::zxcvbn(password, user_inputs);
    if (estimate.score() as u8) < MIN_PASSWORD_SCORE {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "It would be easy to guess.".into());
        return Err(AppError::Invalid(format!(
            "That password is too easy to guess: {hint} Try a longer phrase of a few unrelated words."
        )));
    }
    Ok(())
}

/// Normalises and checks an email address. Deliberately simple: one `@`, a dot in the domain, no
/// spaces or control characters, at most 254 characters; the verification email proves the rest.
pub fn parse_email(input: &str) -> Result<String, AppError> {
    let email = input.trim().to_lowercase();
    let bad = || AppError::Invalid("Enter an email address like name@example.com.".into());
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(bad());
    }
    Ok(email)
}

/// Checks a display name: 1 to 100 characters, no control characters.
pub fn parse_name(input: &str) -> Result<String, AppError> {
    let name = input.trim();
    if name.is_empty() {
        return Err(AppError::Invalid("Enter your name.".into()));
    }
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::Invalid(
            "Use at most 100 ordinary characters for your name.".into(),
        ));
    }
    Ok(name.to_owned())
}

/// Checks an optional phone number: digits, spaces, `+`, `(`, `)` and `-`, at most 30 characters.
pub fn parse_phone(input: Option<&str>) -> Result<Option<String>, AppError> {
    let phone = input.map(str::trim).filter(|p| !p.is_empty());
    if let Some(p) = phone
        && (p.chars().count() > 30 || !p.chars().all(|c| c.is_ascii_digit() || " +()-".contains(c)))
    {
        return Err(AppError::Invalid(
            "Enter a phone number with digits, spaces, +, ( ) or - only, or leave it empty.".into(),
        ));
    }
    Ok(phone.map(str::to_owned))
}

/// A session ends after this long without a request.
pub const IDLE_TIMEOUT_MINUTES: i64 = 30;
/// A session ends this long after sign-in, however active.
pub const ABSOLUTE_TIMEOUT_MS: i64 = 8 * 3_600_000;
/// The session key holding the sign-in time.
const AUTH_AT_KEY: &str = "auth_at";
/// When the session was last seen active (ms). tower-sessions only writes a session that changed,
/// so the idle timeout would otherwise run from sign-in; touching this at most once a minute
/// moves the stored expiry with the user's activity for one write a minute, not one a request.
pub const SEEN_KEY: &str = "seen";
/// How stale [`SEEN_KEY`] may get before a request refreshes it.
pub const SEEN_REFRESH_MS: i64 = 60_000;

/// Failed sign-ins allowed per account in [`THROTTLE_WINDOW_MS`] before further attempts wait.
pub const MAX_FAILURES_PER_WINDOW: i64 = 10;
/// The sign-in throttling window: 15 minutes. The real owner is never locked out for longer.
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60 * 1000;

/// The session keys of a sign-in waiting for its second factor.
const PENDING_KEY: &str = "pending_uid";
const PENDING_AT_KEY: &str = "pending_at";
const PENDING_TRIES_KEY: &str = "pending_tries";
/// How long the second-factor step may take.
pub const PENDING_MS: i64 = 5 * 60 * 1000;

/// How a correct password continues.
pub enum SignedIn {
    /// Signed in.
    Done(UserRecord),
    /// The account has a second factor: the code is asked for next.
    NeedsCode(UserRecord),
}

/// Signs in with email and password. The same error for an unknown email, a wrong password and
/// a deactivated account. When the account has a second factor, the session only remembers the
/// pending user until [`verify_second_factor`] accepts a code.
#[tracing::instrument(skip_all)]
pub async fn sign_in(
    db: &DatabaseConnection,
    session: &Session,
    email: &str,
    password: SecretString,
) -> Result<SignedIn, AppError> {
    let invalid = || {
        AppError::Invalid(
            "That email and password don't match an account. Check them and try again.".into(),
        )
    };
    let email = parse_email(email).map_err(|_| invalid())?;
    let key = format!("signin:{}", hex::encode(Sha256::digest(email.as_bytes())));
    let recent_failures: i64 = db::query_one(
        db,
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'auth.signin_failed' AND subject_type = 'throttle' AND subject_id = ? AND at >= ?",
        vec![key.clone().into(), (now_ms() - THROTTLE_WINDOW_MS).into()],
    )
    .await?
    .map(|r| col(&r, "n"))
    .transpose()?
    .unwrap_or(0);
    if recent_failures >= MAX_FAILURES_PER_WINDOW {
        return Err(AppError::RateLimited(
            "Too many sign-in attempts for this account. Wait 15 minutes, or reset your password."
                .into(),
        ));
    }
    let user = find_user_by_email(db, &email).await?;
    let verified = verify_password(
        user.as_ref().and_then(|u| u.password_hash.clone()),
        password.clone(),
    )
    .await;
    let user = match user {
        Some(u)
            if verified.ok && u.active && u.password_expires_at.is_none_or(|t| t > now_ms()) =>
        {
            u
        }
        other => {
            audit::record(
                db,
                other.as_ref().map(|u| u.id),
                "auth.signin_failed",
                "throttle",
                &key,
                "wrong email or password, or account deactivated",
            )
            .await?;
            return Err(invalid());
        }
    };
    if verified.needs_rehash {
        let hash = hash_password(password).await?;
        db::execute(
            db,
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
            vec![hash.into(), now_ms().into(), user.id.into()],
        )
        .await?;
    }
    if user.totp_secret.is_some() {
        session.cycle_id().await.map_err(|_| AppError::Internal)?;
        session
            .insert(PENDING_KEY, user.id)
            .await
            .map_err(|_| AppError::Internal)?;
        session
            .insert(PENDING_AT_KEY, now_ms())
            .await
            .map_err(|_| AppError::Internal)?;
        session
            .insert(PENDING_TRIES_KEY, 0)
            .await
            .map_err(|_| AppError::Internal)?;
        return Ok(SignedIn::NeedsCode(user));
    }
    complete_sign_in(db, session, &user, "signed in").await?;
    Ok(SignedIn::Done(user))
}

/// Marks the session signed in, with a new id: a session fixed before sign-in is worthless
/// after it.
async fn complete_sign_in(
    db: &DatabaseConnection,
    session: &Session,
    user: &UserRecord,
    detail: &str,
) -> Result<(), AppError> {
    session.cycle_id().await.map_err(|_| AppError::Internal)?;
    let _ = session.remove_value(PENDING_KEY).await;
    let _ = session.remove_value(PENDING_AT_KEY).await;
    let _ = session.remove_value(PENDING_TRIES_KEY).await;
    session
        .insert(USER_ID_KEY, user.id)
        .await
        .map_err(|_| AppError::Internal)?;
    session
        .insert(AUTH_AT_KEY, now_ms())
        .await
        .map_err(|_| AppError::Internal)?;
    audit::record(
        db,
        Some(user.id),
        "auth.signin",
        "user",
        &user.id.to_string(),
        detail,
    )
    .await?;
    Ok(())
}

/// Checks the second factor of a pending sign-in: a TOTP code, or one of the recovery codes.
/// Five wrong codes end the attempt; the user starts again with the password.
#[tracing::instrument(skip_all)]
pub async fn verify_second_factor(
    db: &DatabaseConnection,
    session: &Session,
    code: &str,
) -> Result<UserRecord, AppError> {
    let restart = || {
        AppError::Invalid(
            "Your sign-in took too long or had too many wrong codes. Please sign in again.".into(),
        )
    };
    let pending = session
        .get::<i64>(PENDING_KEY)
        .await
        .map_err(|_| AppError::Internal)?;
    let at = session
        .get::<i64>(PENDING_AT_KEY)
        .await
        .map_err(|_| AppError::Internal)?
        .unwrap_or(0);
    let tries = session
        .get::<i64>(PENDING_TRIES_KEY)
        .await
        .map_err(|_| AppError::Internal)?
        .unwrap_or(0);
    let Some(user_id) = pending.filter(|_| now_ms() - at <= PENDING_MS && tries < 5) else {
        let _ = session.remove_value(PENDING_KEY).await;
        return Err(restart());
    };
    let user = find_user(db, user_id)
        .await?
        .filter(|u| u.active)
        .ok_or_else(restart)?;
    if let Some(how) = check_code(db, &user, code).await? {
        complete_sign_in(db, session, &user, &format!("signed in with {how}")).await?;
        return Ok(user);
    }
    session
        .insert(PENDING_TRIES_KEY, tries + 1)
        .await
        .map_err(|_| AppError::Internal)?;
    audit::record(
        db,
        Some(user.id),
        "auth.second_factor_failed",
        "user",
        &user.id.to_string(),
        "wrong second-factor code",
    )
    .await?;
    Err(AppError::Invalid(
        "That code is not right. Check your authenticator app and try again.".into(),
    ))
}

/// Accepts a TOTP code (once per step) or an unused recovery code; says which it was.
#[tracing::instrument(skip_all, err)]
pub async fn check_code<C: ConnectionTrait>(
    conn: &C,
    user: &UserRecord,
    code: &str,
) -> Result<Option<&'static str>, DbErr> {
    let Some(secret) = &user.totp_secret else {
        return Ok(None);
    };
    let trimmed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if trimmed.len() == 6 {
        if let Some(step) = crate::totp::verify(secret, &trimmed, now_ms(), user.totp_last_step) {
            // Compare-and-set so the same step cannot be used twice, even concurrently.
            let changed = db::execute(
                conn,
                "UPDATE users SET totp_last_step = ? WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)",
                vec![step.into(), user.id.into(), step.into()],
            )
            .await?;
            return Ok((changed == 1).then_some("an authenticator code"));
        }
        return Ok(None);
    }
    let normalised = crate::totp::normalise_recovery_code(&trimmed);
    if normalised.len() != 12 {
        return Ok(None);
    }
    let changed = db::execute(
        conn,
        "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        vec![now_ms().into(), user.id.into(), hash_token(&normalised).into()],
    )
    .await?;
    Ok((changed == 1).then_some("a recovery code"))
}

/// Whether the session waits for a second factor (for the code page).
#[tracing::instrument(skip_all)]
pub async fn pending_second_factor(session: &Session) -> bool {
    let at = session
        .get::<i64>(PENDING_AT_KEY)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    session
        .get::<i64>(PENDING_KEY)
        .await
        .ok()
        .flatten()
        .is_some()
        && now_ms() - at <= PENDING_MS
}

/// The signed-in user of `session` (for plain axum handlers, which have no Leptos context), with
/// the same rules as [`current_user`]: an expired or deactivated account's session is ended.
#[tracing::instrument(skip_all)]
pub async fn user_for_session(
    db: &sea_orm::DatabaseConnection,
    session: &Session,
) -> Result<Option<UserRecord>, AppError> {
    let Some(id) = session
        .get::<i64>(USER_ID_KEY)
        .await
        .map_err(|_| AppError::Internal)?
    else {
        return Ok(None);
    };
    let auth_at = session
        .get::<i64>(AUTH_AT_KEY)
        .await
        .map_err(|_| AppError::Internal)?
        .unwrap_or(0);
    if now_ms() - auth_at > ABSOLUTE_TIMEOUT_MS {
        let _ = session.flush().await;
        return Ok(None);
    }
    match find_user(db, id).await? {
        Some(u) if u.active => {
            let seen = session
                .get::<i64>(SEEN_KEY)
                .await
                .ok()
                .flatten()
                .unwrap_or(0);
            if now_ms() - seen > SEEN_REFRESH_MS {
                // Marks the session changed: saved, with a new expiry, after the response.
                let _ = session.insert(SEEN_KEY, now_ms()).await;
            }
            Ok(Some(u))
        }
        _ => {
            let _ = session.flush().await;
            Ok(None)
        }
    }
}

/// Issues a one-time token for `purpose`, invalidating older unused ones for the same purpose.
#[tracing::instrument(skip_all, err)]
pub async fn issue_token<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    purpose: &str,
    ttl_ms: i64,
) -> Result<String, DbErr> {
    issue_token_with(conn, user_id, purpose, ttl_ms, None).await
}

/// As [`issue_token`], with a value kept alongside (the new address of an email change).
#[tracing::instrument(skip_all, err)]
pub async fn issue_token_with<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    purpose: &str,
    ttl_ms: i64,
    payload: Option<&str>,
) -> Result<String, DbErr> {
    let now = now_ms();
    db::execute(
        conn,
        "UPDATE user_tokens SET used_at = ? WHERE user_id = ? AND purpose = ? AND used_at IS NULL",
        vec![now.into(), user_id.into(), purpose.into()],
    )
    .await?;
    let (token, hash) = new_token();
    db::execute(
        conn,
        "INSERT INTO user_tokens (user_id, purpose, token_hash, expires_at, created_at, payload) VALUES (?, ?, ?, ?, ?, ?)",
        vec![user_id.into(), purpose.into(), hash.into(), (now + ttl_ms).into(), now.into(), payload.map(str::to_owned).into()],
    )
    .await?;
    Ok(token)
}

/// A used token: whose it was and the value it carried.
pub struct ConsumedToken {
    pub user_id: i64,
    pub payload: Option<String>,
}

/// Uses a one-time token: returns it when the token exists, is for `purpose`, is unused and
/// unexpired; marks it used in the same statement so it works once.
#[tracing::instrument(skip_all, err)]
pub async fn consume_token<C: ConnectionTrait>(
    conn: &C,
    token: &str,
    purpose: &str,
) -> Result<Option<ConsumedToken>, DbErr> {
    let now = now_ms();
    let row = db::query_one(
        conn,
        "UPDATE user_tokens SET used_at = ? WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ? RETURNING user_id, payload",
        vec![now.into(), hash_token(token.trim()).into(), purpose.into(), now.into()],
    )
    .await?;
    row.map(|r| {
        Ok(ConsumedToken {
            user_id: col(&r, "user_id")?,
            payload: col(&r, "payload")?,
        })
    })
    .transpose()
}

/// Tokens of `purpose` issued to `user_id` since `since_ms` (for throttling).
#[tracing::instrument(skip_all, err)]
pub async fn tokens_issued_since<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    purpose: &str,
    since_ms: i64,
) -> Result<i64, DbErr> {
    Ok(db::query_one(conn, "SELECT COUNT(*) AS n FROM user_tokens WHERE user_id = ? AND purpose = ? AND created_at >= ?", vec![user_id.into(), purpose.into(), since_ms.into()])
        .await?
        .map(|r| col::<i64>(&r, "n"))
        .transpose()?
        .unwrap_or(0))
}

/// Replaces a user's password and ends their sessions except `keep`.
#[tracing::instrument(skip_all, err)]
pub async fn set_password<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    hash: String,
    keep_session: Option<&str>,
) -> Result<(), DbErr> {
    db::execute(conn, "UPDATE users SET password_hash = ?, password_change_required = FALSE, password_expires_at = NULL, updated_at = ? WHERE id = ?", vec![hash.into(), now_ms().into(), user_id.into()]).await?;
    crate::sessions::end_user_sessions(conn, user_id, keep_session).await?;
    Ok(())
}

/// A random password for `stoep admin create`: 20 characters from an unambiguous alphabet.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
        .collect()
}

/// Creates an admin with `email`, or promotes the existing account, and sets `password`.
/// `totp_secret` (base32) enrols the second factor at once, for automated set-ups; without it
/// the admin sets it up at first sign-in.
/// `one_time` makes the password expire in 24 hours and require a change at first sign-in (for a
/// generated password printed to a terminal).
#[tracing::instrument(skip_all)]
pub async fn create_or_promote_admin(
    db: &DatabaseConnection,
    email: &str,
    name: &str,
    password: SecretString,
    totp_secret: Option<&str>,
    one_time: bool,
) -> Result<(i64, bool), AppError> {
    if let Some(s) = totp_secret
        && crate::totp::base32_decode(s).is_none_or(|b| b.len() < 10)
    {
        return Err(AppError::Invalid(
            "The TOTP secret must be base32 with at least 80 bits.".into(),
        ));
    }
    let email = parse_email(email)?;
    let hash = hash_password(password).await?;
    let now = now_ms();
    let txn = db::begin_write(db).await?;
    let (id, created) = match find_user_by_email(&txn, &email).await? {
        Some(u) => {
            db::execute(&txn, "UPDATE users SET role = 'admin', status = 'active', password_hash = ?, email_verified_at = COALESCE(email_verified_at, ?), updated_at = ? WHERE id = ?", vec![hash.into(), now.into(), now.into(), u.id.into()]).await?;
            crate::sessions::end_user_sessions(&txn, u.id, None).await?;
            (u.id, false)
        }
        None => {
            let row = db::query_one(
                &txn,
                "INSERT INTO users (email, name, role, status, password_hash, email_verified_at, created_at, updated_at) VALUES (?, ?, 'admin', 'active', ?, ?, ?, ?) RETURNING id",
                vec![email.clone().into(), name.into(), hash.into(), now.into(), now.into(), now.into()],
            )
            .await?
            .ok_or(AppError::Internal)?;
            (col(&row, "id")?, true)
        }
    };
    let expires = one_time.then_some(now + 24 * 3_600_000);
    db::execute(
        &txn,
        "UPDATE users SET password_change_required = ?, password_expires_at = ? WHERE id = ?",
        vec![one_time.into(), expires.into(), id.into()],
    )
    .await?;
    if let Some(secret) = totp_secret {
        db::execute(&txn, "UPDATE users SET totp_secret = ?, totp_enabled_at = ?, totp_last_step = NULL WHERE id = ?", vec![secret.to_uppercase().into(), now.into(), id.into()]).await?;
    }
    audit::record(
        &txn,
        None,
        "auth.admin_bootstrap",
        "user",
        &id.to_string(),
        if created {
            "admin created from the command line"
        } else {
            "account promoted to admin from the command line"
        },
    )
    .await?;
    txn.commit().await?;
    Ok((id, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules_refuse_short_and_common_and_accept_long_phrases() {
        assert!(check_new_password("short", &[]).is_err());
        assert!(check_new_password("password1", &[]).is_err());
        assert!(check_new_password("jolene2026!", &["jolene"]).is_err());
        assert!(check_new_password("copper kettle under the stoep", &[]).is_ok());
        assert!(check_new_password(&"a".repeat(300), &[]).is_err());
        let long: String = "horse battery staple correct ".repeat(3);
        assert!(long.chars().count() >= 64 && check_new_password(&long, &[]).is_ok());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(parse_email("  Jo@Example.COM ").unwrap(), "jo@example.com");
        assert!(parse_email("jo@example").is_err());
        assert!(parse_email("jo example@x.com").is_err());
        assert!(parse_email("jo@x.com\r\nBcc: a@b.c").is_err());
    }

    #[tokio::test]
    async fn hashes_verify_and_the_dummy_never_matches() {
        let h = hash_password(SecretString::from("copper kettle under the stoep"))
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let v = verify_password(
            Some(h.clone()),
            SecretString::from("copper kettle under the stoep"),
        )
        .await;
        assert!(v.ok && !v.needs_rehash);
        assert!(
            !verify_password(Some(h), SecretString::from("wrong"))
                .await
                .ok
        );
        assert!(
            !verify_password(None, SecretString::from("anything"))
                .await
                .ok
        );
    }
}
