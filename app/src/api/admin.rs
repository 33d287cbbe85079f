//! The admin's integration-health area, outbox, mail catcher, stand-in switches and audit log.
//! Every function here requires an admin; anyone else gets 404.

use leptos::prelude::*;

#[cfg(feature = "ssr")]
use model::JobFilter;
use model::error::AppError;
use model::{AuditRow, CaughtMail, EmailRow, IntegrationHealth, JobDetail, JobPage};

#[cfg(feature = "ssr")]
async fn admin() -> Result<domain::auth::UserRecord, AppError> {
    crate::ssr::guard::require_role(model::Role::Admin).await
}

#[server(prefix = "/api", endpoint = "integration_health")]
pub async fn get_integration_health() -> Result<Vec<IntegrationHealth>, AppError> {
    admin().await?;
    Ok(domain::ledger::health(&crate::ssr::state().db).await?)
}

#[server(prefix = "/api", endpoint = "list_jobs")]
pub async fn list_jobs(
    integration: Option<String>,
    status: Option<String>,
    subject: Option<String>,
    since_hours: Option<u32>,
    page: Option<u32>,
) -> Result<JobPage, AppError> {
    admin().await?;
    let filter = JobFilter {
        integration,
        status,
        subject,
        since_hours,
    };
    Ok(domain::ledger::list_jobs(&crate::ssr::state().db, &filter, page.unwrap_or(1), 25).await?)
}

#[server(prefix = "/api", endpoint = "get_job")]
pub async fn get_job(id: i64) -> Result<JobDetail, AppError> {
    admin().await?;
    domain::ledger::job_detail(&crate::ssr::state().db, id)
        .await?
        .ok_or(AppError::NotFound)
}

#[server(prefix = "/api", endpoint = "retry_job")]
pub async fn retry_job(id: i64) -> Result<(), AppError> {
    let me = admin().await?;
    domain::ledger::retry_now(&crate::ssr::state().db, id, me.id)
        .await
        .map_err(AppError::from)
}

#[server(prefix = "/api", endpoint = "retry_jobs")]
pub async fn retry_jobs(
    integration: Option<String>,
    subject: Option<String>,
    since_hours: Option<u32>,
) -> Result<u64, AppError> {
    let me = admin().await?;
    let filter = JobFilter {
        integration,
        status: None,
        subject,
        since_hours,
    };
    Ok(domain::ledger::retry_all(&crate::ssr::state().db, &filter, me.id).await?)
}

#[server(prefix = "/api", endpoint = "close_job")]
pub async fn close_job(id: i64, cancel: bool, note: String) -> Result<(), AppError> {
    let me = admin().await?;
    domain::ledger::close(&crate::ssr::state().db, id, me.id, cancel, &note)
        .await
        .map_err(AppError::from)
}

#[server(prefix = "/api", endpoint = "list_emails")]
pub async fn list_emails() -> Result<Vec<EmailRow>, AppError> {
    admin().await?;
    Ok(domain::email::outbox(&crate::ssr::state().db).await?)
}

/// Sends an email again as a new message with the same content, to the address the customer
/// has now (so an admin can fix a bad address, then resend).
#[server(prefix = "/api", endpoint = "resend_email")]
pub async fn resend_email(id: i64) -> Result<(), AppError> {
    let me = admin().await?;
    let st = crate::ssr::state();
    domain::email::resend(&st.db, &st.settings, me.id, id).await
}

/// What the local mail catcher received, newest first (empty when a real relay is configured).
#[server(prefix = "/api", endpoint = "caught_mail")]
pub async fn get_caught_mail() -> Result<Vec<CaughtMail>, AppError> {
    admin().await?;
    let st = crate::ssr::state();
    Ok(match &st.standins {
        Some(console) => console.caught_mail(100).await,
        None => Vec::new(),
    })
}

/// Queues a harmless test message to the signed-in admin.
#[server(prefix = "/api", endpoint = "send_test_email")]
pub async fn send_test_email() -> Result<(), AppError> {
    let me = admin().await?;
    let st = crate::ssr::state();
    domain::email::send_test(&st.db, &st.settings, &me).await
}

/// The stand-ins and their switches, for demos and tests.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StandinsView {
    /// How the local SMTP server answers.
    pub smtp: String,
    pub smtp_active: bool,
    /// The Stripe stand-in's faults in words, and its own page, when it runs.
    pub stripe: String,
    pub stripe_url: Option<String>,
    /// The CRM stand-in's faults in words, and its own page, when it runs.
    pub crm: String,
    pub crm_url: Option<String>,
}

#[server(prefix = "/api", endpoint = "standin_state")]
pub async fn standin_state() -> Result<StandinsView, AppError> {
    admin().await?;
    let st = crate::ssr::state();
    let list = st.standins.as_ref().map(|c| c.list()).unwrap_or_default();
    let find = |key: &str| list.iter().find(|s| s.key == key);
    Ok(StandinsView {
        smtp: find("smtp")
            .map(|s| s.state.clone())
            .unwrap_or_else(|| "accept".into()),
        smtp_active: find("smtp").is_some(),
        stripe: find("stripe")
            .map(|s| s.state.clone())
            .unwrap_or_else(|| "normal".into()),
        stripe_url: find("stripe").and_then(|s| s.page_url.clone()),
        crm: find("crm")
            .map(|s| s.state.clone())
            .unwrap_or_else(|| "normal".into()),
        crm_url: find("crm").and_then(|s| s.page_url.clone()),
    })
}

/// Switches a stand-in (`stripe`, `crm`) to a fault, or back to `normal`. Audited.
#[server(prefix = "/api", endpoint = "set_standin_fault")]
pub async fn set_standin_fault(target: String, fault: String) -> Result<(), AppError> {
    let me = admin().await?;
    let st = crate::ssr::state();
    if target == "smtp" {
        return Err(AppError::Invalid("Choose stripe or crm.".into()));
    }
    switch_standin(&st, me.id, &target, &fault, "standin.fault", &target).await
}

/// How the local mail catcher answers: `accept`, `unavailable` (421) or `reject` (550). Audited.
#[server(prefix = "/api", endpoint = "set_smtp_mode")]
pub async fn set_smtp_mode(mode: String) -> Result<(), AppError> {
    let me = admin().await?;
    let st = crate::ssr::state();
    switch_standin(&st, me.id, "smtp", &mode, "standin.smtp_mode", "smtp").await
}

#[cfg(feature = "ssr")]
async fn switch_standin(
    st: &crate::ssr::AppState,
    actor: i64,
    key: &str,
    fault: &str,
    action: &str,
    subject: &str,
) -> Result<(), AppError> {
    let Some(console) = &st.standins else {
        return Err(AppError::Conflict(match key {
            "smtp" => "A real SMTP relay is configured; there is no stand-in to switch.".into(),
            "stripe" => "Real Stripe keys are configured; there is no stand-in to switch.".into(),
            _ => "A real CRM is configured; there is no stand-in to switch.".into(),
        }));
    };
    console.set_fault(key, fault).map_err(|m| {
        if m.contains("configured") {
            AppError::Conflict(m)
        } else {
            AppError::Invalid(m)
        }
    })?;
    domain::audit::record(&st.db, Some(actor), action, "standin", subject, fault).await?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "audit_log")]
pub async fn audit_log(prefix: Option<String>) -> Result<Vec<AuditRow>, AppError> {
    admin().await?;
    Ok(domain::audit::recent(
        &crate::ssr::state().db,
        prefix.as_deref().filter(|p| !p.is_empty()),
        200,
    )
    .await?)
}

/// A row of the people list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PersonRow {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub role: String,
    pub active: bool,
    pub email_verified: bool,
    pub created_at_ms: i64,
    /// Customers: the CRM's view (lifecycle stage, owner, sync state), in words.
    pub crm: Option<String>,
}

/// Everyone with an account, newest first, optionally matching `q` in name or email.
#[server(prefix = "/api", endpoint = "list_people")]
pub async fn list_people(q: Option<String>) -> Result<Vec<PersonRow>, AppError> {
    admin().await?;
    let rows = domain::people::list(&crate::ssr::state().db, &q.unwrap_or_default()).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let crm = (r.role == "customer").then(|| {
                let mut parts = Vec::new();
                if let Some(stage) = &r.lifecycle_stage {
                    parts.push(format!("stage: {stage}"));
                }
                if let Some(owner) = &r.crm_owner {
                    parts.push(format!("owner: {owner}"));
                }
                let pending = r.crm_pending.unwrap_or(0) == 1;
                parts.push(match (&r.blocked_error, &r.crm_id, pending) {
                    (Some(e), _, _) => format!("not synced: {e}"),
                    (None, _, true) => "sync pending".into(),
                    (None, Some(id), false) => format!("synced (contact {id})"),
                    (None, None, false) => "not synced yet".into(),
                });
                parts.join(" · ")
            });
            PersonRow {
                id: r.id,
                name: r.name,
                email: r.email,
                role: r.role,
                active: r.status == "active",
                email_verified: r.email_verified_at.is_some(),
                created_at_ms: r.created_at,
                crm,
            }
        })
        .collect())
}

/// Deactivates or reactivates an account. A deactivated user is signed out at once.
#[server(prefix = "/api", endpoint = "set_user_active")]
pub async fn set_user_active(id: i64, active: bool) -> Result<(), AppError> {
    let me = admin().await?;
    if id == me.id && !active {
        return Err(AppError::Conflict(
            "You can't deactivate your own account.".into(),
        ));
    }
    domain::people::set_active(&crate::ssr::state().db, me.id, id, active).await
}

/// Corrects a customer's email address (for example after the mail server refused it), so
/// failed messages can be resent to it.
#[server(prefix = "/api", endpoint = "correct_user_email")]
pub async fn correct_user_email(id: i64, email: String) -> Result<(), AppError> {
    use domain::auth;
    let me = admin().await?;
    let email = auth::parse_email(&email)?;
    domain::people::correct_email(&crate::ssr::state().db, me.id, id, email).await
}

/// Invites a member of staff: an account without a password and an email with a link (valid for
/// 7 days) where they choose one. They set up two-step verification at first sign-in.
#[server(prefix = "/api", endpoint = "invite_staff")]
pub async fn invite_staff(name: String, email: String) -> Result<(), AppError> {
    use domain::auth;
    let me = admin().await?;
    let name = auth::parse_name(&name)?;
    let email = auth::parse_email(&email)?;
    let st = crate::ssr::state();
    domain::people::invite_staff(&st.db, &st.settings, &me, name, email).await
}

/// The integration map for the running deployment.
#[server(prefix = "/api", endpoint = "integration_map")]
pub async fn integration_map() -> Result<Vec<model::MapRow>, AppError> {
    admin().await?;
    let st = crate::ssr::state();
    Ok(domain::map::build(&st).await?)
}

/// The outcome of a connection test, in plain words.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionTest {
    pub key: String,
    pub ok: bool,
    pub message: String,
}

/// Runs a harmless call against one integration and says what happened. Audited.
#[server(prefix = "/api", endpoint = "test_integration")]
pub async fn test_integration(key: String) -> Result<ConnectionTest, AppError> {
    let me = admin().await?;
    if !matches!(
        key.as_str(),
        "payments" | "crm" | "email" | "storage" | "calendar"
    ) {
        return Err(AppError::Invalid("Unknown integration.".into()));
    }
    let st = crate::ssr::state();
    let r = domain::map::test_connection(&st, &key, me.id).await?;
    Ok(ConnectionTest {
        key,
        ok: r.is_ok(),
        message: match r {
            Ok(m) | Err(m) => m,
        },
    })
}

/// A runbook from docs/runbooks, for the person maintaining the portal.
#[server(prefix = "/api", endpoint = "runbook")]
pub async fn runbook(name: String) -> Result<String, AppError> {
    admin().await?;
    Ok(match name.as_str() {
        "payments" => include_str!("../../../docs/runbooks/payments.md"),
        "crm" => include_str!("../../../docs/runbooks/crm.md"),
        "email" => include_str!("../../../docs/runbooks/email.md"),
        "storage" => include_str!("../../../docs/runbooks/storage.md"),
        "calendar" => include_str!("../../../docs/runbooks/calendar.md"),
        _ => return Err(AppError::NotFound),
    }
    .to_owned())
}
