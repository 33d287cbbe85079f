//! A person's own account: their profile and consents, an email change confirmed from the new
//! address, a password reset or a staff invitation completed with an emailed link, and their
//! private calendar-feed link. Sign-in, passwords and tokens themselves are in `auth`.

use sea_orm::{DatabaseConnection, FromQueryResult};

use crate::settings::PortalSettings;
use crate::{audit, auth, db, email as mail};
use model::error::AppError;

/// The profile as the account page shows it.
#[derive(Clone, Debug, FromQueryResult)]
pub struct ProfileRow {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub marketing_consent: bool,
    pub email_verified_at: Option<i64>,
    pub privacy_notice_version: Option<String>,
    pub privacy_accepted_at: Option<i64>,
}

#[tracing::instrument(skip_all)]
pub async fn profile(db: &DatabaseConnection, user_id: i64) -> Result<ProfileRow, AppError> {
    let r = db::query_one(
        db,
        "SELECT name, email, phone, marketing_consent, email_verified_at, privacy_notice_version, privacy_accepted_at FROM users WHERE id = ?",
        vec![user_id.into()],
    )
    .await?
    .ok_or(AppError::NotFound)?;
    Ok(ProfileRow::from_query_result(&r, "")?)
}

/// Updates name, phone and marketing consent (already parsed). The CRM hears of it; a consent
/// change is audited on its own.
#[tracing::instrument(skip_all)]
pub async fn update_profile(
    db: &DatabaseConnection,
    user_id: i64,
    name: String,
    phone: Option<String>,
    marketing: bool,
) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    let now = db::now_ms();
    let was: bool = db::query_one(
        &txn,
        "SELECT marketing_consent FROM users WHERE id = ?",
        vec![user_id.into()],
    )
    .await?
    .map(|r| db::col(&r, "marketing_consent"))
    .transpose()?
    .unwrap_or(false);
    db::execute(
        &txn,
        "UPDATE users SET name = ?, phone = ?, marketing_consent = ?, marketing_consent_at = CASE WHEN marketing_consent <> ? THEN ? ELSE marketing_consent_at END, updated_at = ? WHERE id = ?",
        vec![name.into(), phone.into(), marketing.into(), marketing.into(), now.into(), now.into(), user_id.into()],
    )
    .await?;
    crate::crm::changed(&txn, user_id, "profile").await?;
    audit::record(
        &txn,
        Some(user_id),
        "account.profile",
        "user",
        &user_id.to_string(),
        "profile updated",
    )
    .await?;
    if was != marketing {
        audit::record(
            &txn,
            Some(user_id),
            "account.consent",
            "user",
            &user_id.to_string(),
            if marketing {
                "marketing consent given"
            } else {
                "marketing consent withdrawn"
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Confirms an email change with the token sent to the new address.
#[tracing::instrument(skip_all)]
pub async fn confirm_email_change(db: &DatabaseConnection, token: &str) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    let expired = || {
        AppError::Invalid("This link has expired or was already used. Ask for the change again from your account page.".into())
    };
    let Some(t) = auth::consume_token(&txn, token, "change_email").await? else {
        return Err(expired());
    };
    let new_email = t.payload.ok_or_else(expired)?;
    if auth::find_user_by_email(&txn, &new_email).await?.is_some() {
        return Err(AppError::Conflict(
            "That address now belongs to another account.".into(),
        ));
    }
    let now = db::now_ms();
    db::execute(
        &txn,
        "UPDATE users SET email = ?, email_verified_at = ?, updated_at = ? WHERE id = ?",
        vec![new_email.into(), now.into(), now.into(), t.user_id.into()],
    )
    .await?;
    crate::crm::changed(&txn, t.user_id, "email").await?;
    audit::record(
        &txn,
        Some(t.user_id),
        "auth.email_changed",
        "user",
        &t.user_id.to_string(),
        "email address changed and confirmed",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Whose a valid, unused token of `purpose` is, without using it up: `(user id, name, email)`.
#[tracing::instrument(skip_all, err)]
async fn token_holder(
    db: &DatabaseConnection,
    token: &str,
    purpose: &str,
) -> Result<Option<(i64, String, String)>, sea_orm::DbErr> {
    let hash = auth::hash_token(token.trim());
    let Some(r) = db::query_one(db, "SELECT t.user_id AS user_id, u.name AS name, u.email AS email FROM user_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND t.purpose = ? AND t.used_at IS NULL AND t.expires_at > ?", vec![hash.into(), purpose.into(), db::now_ms().into()]).await? else {
        return Ok(None);
    };
    Ok(Some((
        db::col::<i64>(&r, "user_id")?,
        db::col::<String>(&r, "name")?,
        db::col::<String>(&r, "email")?,
    )))
}

/// Sets a new password with a reset link (the rules checked before the token is used up).
/// Ends every session; the user then signs in.
#[tracing::instrument(skip_all)]
pub async fn reset_password(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    token: &str,
    new_password: String,
) -> Result<(), AppError> {
    let expired = || {
        AppError::Invalid(
            "This reset link has expired or was already used. Ask for a new one.".into(),
        )
    };
    let (user_id, name, email) = token_holder(db, token, "reset_password")
        .await?
        .ok_or_else(expired)?;
    auth::check_new_password(&new_password, &[&name, &email])?;
    let hash = auth::hash_password(secrecy::SecretString::from(new_password)).await?;
    let txn = db::begin_write(db).await?;
    if auth::consume_token(&txn, token, "reset_password")
        .await?
        .is_none_or(|t| t.user_id != user_id)
    {
        return Err(expired());
    }
    auth::set_password(&txn, user_id, hash, None).await?;
    mail::enqueue(
        &txn,
        settings,
        Some(user_id),
        &email,
        mail::templates::password_changed(settings, &name),
        &format!("password-changed:{user_id}:{}", db::now_ms()),
    )
    .await?;
    audit::record(
        &txn,
        Some(user_id),
        "auth.password_reset",
        "user",
        &user_id.to_string(),
        "password reset with an emailed link; all sessions ended",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Accepts a staff invitation: sets the password and confirms the address.
#[tracing::instrument(skip_all)]
pub async fn accept_invitation(
    db: &DatabaseConnection,
    token: &str,
    new_password: String,
) -> Result<(), AppError> {
    let invalid = || {
        AppError::Invalid(
            "This invitation has expired or was already used. Ask the business for a new one."
                .into(),
        )
    };
    let (user_id, name, email) = token_holder(db, token, "invite")
        .await?
        .ok_or_else(invalid)?;
    auth::check_new_password(&new_password, &[&name, &email])?;
    let hash = auth::hash_password(secrecy::SecretString::from(new_password)).await?;
    let txn = db::begin_write(db).await?;
    if auth::consume_token(&txn, token, "invite")
        .await?
        .is_none_or(|t| t.user_id != user_id)
    {
        return Err(invalid());
    }
    let now = db::now_ms();
    db::execute(&txn, "UPDATE users SET password_hash = ?, email_verified_at = COALESCE(email_verified_at, ?), updated_at = ? WHERE id = ?", vec![hash.into(), now.into(), now.into(), user_id.into()]).await?;
    audit::record(
        &txn,
        Some(user_id),
        "auth.invitation_accepted",
        "user",
        &user_id.to_string(),
        "staff invitation accepted",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// A new private calendar-feed link; older links stop working. Returns the feed's URL.
#[tracing::instrument(skip_all)]
pub async fn new_calendar_feed(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    user_id: i64,
) -> Result<String, AppError> {
    let txn = db::begin_write(db).await?;
    let now = db::now_ms();
    db::execute(
        &txn,
        "UPDATE calendar_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        vec![now.into(), user_id.into()],
    )
    .await?;
    let (token, hash) = auth::new_token();
    db::execute(
        &txn,
        "INSERT INTO calendar_tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)",
        vec![user_id.into(), hash.into(), now.into()],
    )
    .await?;
    audit::record(
        &txn,
        Some(user_id),
        "account.calendar_feed",
        "user",
        &user_id.to_string(),
        "new calendar feed link; older links revoked",
    )
    .await?;
    txn.commit().await?;
    Ok(format!("{}/calendar/{token}.ics", settings.public_url))
}

/// The user a calendar-feed token belongs to, while it is not revoked.
#[tracing::instrument(skip_all, err)]
pub async fn calendar_feed_owner(
    db: &DatabaseConnection,
    token: &str,
) -> Result<Option<i64>, sea_orm::DbErr> {
    let hash = auth::hash_token(token);
    db::query_one(
        db,
        "SELECT user_id FROM calendar_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        vec![hash.into()],
    )
    .await?
    .map(|r| db::col::<i64>(&r, "user_id"))
    .transpose()
}

/// Records a password change the user made themselves (the new hash already made): every other
/// session ends, the user is told by email, and it is audited.
#[tracing::instrument(skip_all)]
pub async fn password_changed(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    me: &auth::UserRecord,
    hash: String,
) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    // The new id is only known once the response saves the session: end every stored session of
    // this user; this one is written again under its new id when the response goes out.
    auth::set_password(&txn, me.id, hash, None).await?;
    mail::enqueue(
        &txn,
        settings,
        Some(me.id),
        &me.email,
        mail::templates::password_changed(settings, &me.name),
        &format!("password-changed:{}:{}", me.id, db::now_ms()),
    )
    .await?;
    audit::record(
        &txn,
        Some(me.id),
        "auth.password_changed",
        "user",
        &me.id.to_string(),
        "password changed by the user; other sessions ended",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Starts an email change (the password already checked): a confirmation link goes to the new
/// address and a notice to the old. The answer is the same whether or not the new address is
/// free.
#[tracing::instrument(skip_all)]
pub async fn request_email_change(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    me: &auth::UserRecord,
    new_email: String,
) -> Result<(), AppError> {
    use model::mask_email;
    let txn = db::begin_write(db).await?;
    if auth::tokens_issued_since(&txn, me.id, "change_email", db::now_ms() - 3_600_000).await? >= 5
    {
        return Err(AppError::RateLimited(
            "You've asked for several email changes in the last hour. Please wait a while.".into(),
        ));
    }
    let taken = auth::find_user_by_email(&txn, &new_email).await?.is_some();
    let now = db::now_ms();
    if !taken {
        let token = auth::issue_token_with(
            &txn,
            me.id,
            "change_email",
            24 * 3_600_000,
            Some(&new_email),
        )
        .await?;
        mail::enqueue(
            &txn,
            settings,
            None,
            &new_email,
            mail::templates::email_change_confirm(settings, &me.name, &token),
            &format!("email-change:{}:{now}", me.id),
        )
        .await?;
    }
    mail::enqueue(
        &txn,
        settings,
        Some(me.id),
        &me.email,
        mail::templates::email_change_notice(settings, &me.name, &mask_email(&new_email)),
        &format!("email-change-notice:{}:{now}", me.id),
    )
    .await?;
    audit::record(
        &txn,
        Some(me.id),
        "auth.email_change_requested",
        "user",
        &me.id.to_string(),
        &format!("change to {} requested", mask_email(&new_email)),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Sends a reset link if the address has an active account (at most three an hour).
#[tracing::instrument(skip_all)]
pub async fn request_password_reset(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    email: &str,
) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    if let Some(user) = auth::find_user_by_email(&txn, email)
        .await?
        .filter(|u| u.active)
    {
        // At most 3 links an hour per account; more would only flood the inbox.
        if auth::tokens_issued_since(&txn, user.id, "reset_password", db::now_ms() - 3_600_000)
            .await?
            < 3
        {
            let token = auth::issue_token(&txn, user.id, "reset_password", 3_600_000).await?;
            mail::enqueue(
                &txn,
                settings,
                Some(user.id),
                &user.email,
                mail::templates::password_reset(settings, &user.name, &token),
                &format!("reset:{}:{}", user.id, db::now_ms()),
            )
            .await?;
            audit::record(
                &txn,
                Some(user.id),
                "auth.reset_requested",
                "user",
                &user.id.to_string(),
                "password reset link sent",
            )
            .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

/// A customer's sign-up (every field already parsed and the password checked and hashed): the
/// account, the verification email and the CRM's note of it. An address that already has an
/// account gets a notice instead (at most once a day), and the answer is the same.
#[tracing::instrument(skip_all)]
pub async fn sign_up(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    name: String,
    email: String,
    phone: Option<String>,
    hash: String,
    marketing: bool,
) -> Result<(), AppError> {
    let now = db::now_ms();
    let txn = db::begin_write(db).await?;
    match auth::find_user_by_email(&txn, &email).await? {
        Some(existing) => {
            // Tell the owner, once a day at most; the form answers as for a new account.
            let message = mail::templates::signup_existing(settings, &existing.name);
            mail::enqueue(
                &txn,
                settings,
                Some(existing.id),
                &existing.email,
                message,
                &format!("signup-existing:{}:{}", existing.id, now / 86_400_000),
            )
            .await?;
            audit::record(
                &txn,
                Some(existing.id),
                "auth.signup_existing",
                "user",
                &existing.id.to_string(),
                "sign-up attempted with an existing email",
            )
            .await?;
        }
        None => {
            let row = db::query_one(
                &txn,
                "INSERT INTO users (email, name, phone, password_hash, role, status, privacy_notice_version, privacy_accepted_at, \
                 marketing_consent, marketing_consent_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'customer', 'active', ?, ?, ?, ?, ?, ?) RETURNING id",
                vec![
                    email.clone().into(), name.clone().into(), phone.into(), hash.into(), settings.privacy_notice_version.clone().into(),
                    now.into(), marketing.into(), marketing.then_some(now).into(), now.into(), now.into(),
                ],
            )
            .await?
            .ok_or(AppError::Internal)?;
            let id: i64 = db::col(&row, "id")?;
            crate::crm::changed(&txn, id, "sign-up").await?;
            let token = auth::issue_token(&txn, id, "verify_email", 24 * 3_600_000).await?;
            let message = mail::templates::verify_email(settings, &name, &token);
            mail::enqueue(
                &txn,
                settings,
                Some(id),
                &email,
                message,
                &format!("verify:{id}:{now}"),
            )
            .await?;
            audit::record(
                &txn,
                Some(id),
                "auth.signup",
                "user",
                &id.to_string(),
                &format!(
                    "customer signed up; privacy notice {} accepted; marketing consent {}",
                    settings.privacy_notice_version,
                    if marketing { "given" } else { "not given" }
                ),
            )
            .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

/// Confirms an email address with the token from the verification email.
#[tracing::instrument(skip_all)]
pub async fn verify_email(
    db: &DatabaseConnection,
    settings: &PortalSettings,
    token: &str,
) -> Result<(), AppError> {
    let txn = db::begin_write(db).await?;
    let Some(auth::ConsumedToken { user_id, .. }) =
        auth::consume_token(&txn, token, "verify_email").await?
    else {
        return Err(AppError::Invalid("This confirmation link has expired or was already used. Sign in and ask for a new one.".into()));
    };
    let now = db::now_ms();
    db::execute(&txn, "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?), updated_at = ? WHERE id = ?", vec![now.into(), now.into(), user_id.into()]).await?;
    crate::crm::changed(&txn, user_id, "verified").await?;
    if let Some(user) = auth::find_user(&txn, user_id).await? {
        mail::enqueue(
            &txn,
            settings,
            Some(user_id),
            &user.email,
            mail::templates::welcome(settings, &user.name),
            &format!("welcome:{user_id}"),
        )
        .await?;
    }
    audit::record(
        &txn,
        Some(user_id),
        "auth.email_verified",
        "user",
        &user_id.to_string(),
        "email address confirmed",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
