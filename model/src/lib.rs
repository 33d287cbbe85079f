//! Data shapes shared by the server and the browser: what server functions return and pages show.
//! Nothing here holds a secret or a password hash.

use serde::{Deserialize, Serialize};

/// The business's look, from configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    pub business_name: String,
    /// Primary colour as `#rrggbb`.
    pub primary_colour: String,
    /// Optional absolute or site-relative URL of the logo.
    pub logo_url: Option<String>,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            business_name: "Stoep".into(),
            primary_colour: "#1f5f8b".into(),
            logo_url: None,
        }
    }
}

/// A user's role. The server decides what each may do; pages only hide what a role cannot do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Customer,
    Staff,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Staff => "staff",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Role::Customer),
            "staff" => Some(Role::Staff),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[cfg(feature = "server")]
impl sea_orm::TryGetable for Role {
    fn try_get_by<I: sea_orm::ColIdx>(
        res: &sea_orm::QueryResult,
        index: I,
    ) -> Result<Self, sea_orm::TryGetError> {
        let text = String::try_get_by(res, index)?;
        Role::parse(&text).ok_or_else(|| {
            sea_orm::TryGetError::DbErr(sea_orm::DbErr::Type(format!("{text} is not a role")))
        })
    }
}

#[cfg(feature = "server")]
impl From<Role> for sea_orm::Value {
    fn from(r: Role) -> Self {
        r.as_str().into()
    }
}

/// The signed-in user as pages see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub role: Role,
    pub email_verified: bool,
}

/// What the base layout needs on every page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    pub branding: Branding,
    pub user: Option<CurrentUser>,
    /// Set for admins when something in the integration ledger needs them (the banner).
    pub admin_alert: Option<String>,
    pub demo: bool,
}

/// One integration's health as the admin area shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationHealth {
    pub integration: String,
    /// `healthy`, `degraded` or `failing`.
    pub state: String,
    pub reason: String,
    pub queue_depth: i64,
    pub oldest_waiting_ms: Option<i64>,
    pub failures_24h: i64,
    pub in_review: i64,
    pub last_success_ms: Option<i64>,
}

/// A row of the job list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(sea_orm::FromQueryResult))]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub integration: String,
    pub subject_type: String,
    pub subject_id: String,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    #[cfg_attr(feature = "server", sea_orm(alias = "run_after"))]
    pub run_after_ms: i64,
    pub last_error: Option<String>,
    #[cfg_attr(feature = "server", sea_orm(alias = "created_at"))]
    pub created_at_ms: i64,
    #[cfg_attr(feature = "server", sea_orm(alias = "updated_at"))]
    pub updated_at_ms: i64,
}

/// One attempt at a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobAttemptRow {
    pub attempt: i32,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub outcome: String,
    pub error: Option<String>,
}

/// A job with its history, for the detail page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDetail {
    pub job: JobRow,
    /// A plain description of what the job does and for whom.
    pub description: String,
    pub attempts: Vec<JobAttemptRow>,
    pub audit: Vec<AuditRow>,
}

/// A page of jobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPage {
    pub jobs: Vec<JobRow>,
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
}

/// A filter over the job list; empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFilter {
    pub integration: Option<String>,
    pub status: Option<String>,
    pub subject: Option<String>,
    /// Only jobs created within this many hours.
    pub since_hours: Option<u32>,
}

/// An audit log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(sea_orm::FromQueryResult))]
pub struct AuditRow {
    pub id: i64,
    #[cfg_attr(feature = "server", sea_orm(alias = "at"))]
    pub at_ms: i64,
    pub actor: Option<String>,
    pub action: String,
    pub subject_type: String,
    pub subject_id: String,
    pub detail: String,
}

/// An outbound email as the message log shows it (recipient masked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailRow {
    pub id: i64,
    pub to_masked: String,
    pub template: String,
    pub subject: String,
    /// queued, sent, retrying, failed, in review.
    pub status: String,
    pub attempts: i32,
    pub smtp_reply: Option<String>,
    pub created_at_ms: i64,
    pub job_id: Option<i64>,
}

/// A message received by the local mail catcher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaughtMail {
    pub id: String,
    pub received_at_ms: i64,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<String>,
}

/// Formats milliseconds since the epoch as `YYYY-MM-DD HH:MM UTC` without a time library, so the
/// browser bundle stays small.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Masks an email address for lists and logs: `jo***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let keep: String = local.chars().take(2).collect();
            format!("{keep}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_ms(1_795_859_200_000), "2026-11-28 09:46:40 UTC");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn masks_emails() {
        assert_eq!(mask_email("jolene@example.com"), "jo***@example.com");
        assert_eq!(mask_email("a@b.c"), "a***@b.c");
        assert_eq!(mask_email("nonsense"), "***");
    }
}

/// One data flow between the portal and another system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub what: String,
    /// e.g. "portal → Stripe".
    pub direction: String,
    pub fields: Vec<String>,
    /// "real-time: ...", "scheduled: every 10 minutes", "manual: ...".
    pub timing: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub name: String,
    /// When the portal first saw its current value (ms), if recorded.
    pub changed_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapRow {
    /// `payments`, `crm`, `email`, `storage`, `calendar`.
    pub key: String,
    pub name: String,
    pub connected_to: String,
    pub standin: bool,
    pub flows: Vec<Flow>,
    pub source_of_truth: Vec<(String, String)>,
    pub retry: String,
    pub visibility: String,
    pub secrets: Vec<SecretInfo>,
    pub fallback: String,
    pub health: Option<IntegrationHealth>,
    pub runbook: String,
}
pub mod error;
pub mod status;

pub use status::{BookingStatus, DocumentStatus, JobStatus, PaymentStatus, RefundStatus};
