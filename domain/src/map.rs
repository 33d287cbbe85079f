//! The integration map: for the running deployment, which tools are connected (the real service
//! or a local stand-in), what moves between them field by field, the source of truth, how often
//! each flow runs, the retry policy and its end, who can see the data, the secrets by name (and
//! when they last changed, never their value), the fallback, and the current health. Rendered as
//! the admin page `/admin/integrations/map` and as Markdown for handover documents.

use sea_orm::{ConnectionTrait, DbErr};

use crate::db::{self, col, now_ms};
use crate::ledger::Integration;
pub use crate::settings::MapFacts;
use crate::settings::Portal;
use model::{Flow, MapRow, SecretInfo};

fn flow(what: &str, direction: &str, fields: &[&str], timing: &str) -> Flow {
    Flow {
        what: what.into(),
        direction: direction.into(),
        fields: fields.iter().map(|s| s.to_string()).collect(),
        timing: timing.into(),
    }
}

fn retry_text(i: Integration) -> String {
    let p = i.policy();
    format!(
        "{} attempts, waiting from {} s doubling up to {} min (±10 %, or the service's Retry-After); then manual review in the health area, with an alert to admins",
        p.max_attempts,
        p.base_ms / 1000,
        p.cap_ms / 60_000
    )
}

/// Records a fingerprint of each configured secret; when it differs from the last one seen, the
/// secret counts as changed now. Only a truncated SHA-256 is stored, never the value.
#[tracing::instrument(skip_all, err)]
pub async fn record_secret<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    value: &str,
) -> Result<(), DbErr> {
    use sha2::Digest;
    let fp = hex::encode(&sha2::Sha256::digest(value.as_bytes())[..8]);
    let now = now_ms();
    db::execute(
        conn,
        "INSERT INTO secret_fingerprints (name, fingerprint, changed_at, seen_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET changed_at = CASE WHEN secret_fingerprints.fingerprint <> excluded.fingerprint THEN excluded.changed_at ELSE secret_fingerprints.changed_at END, \
         fingerprint = excluded.fingerprint, seen_at = excluded.seen_at",
        vec![name.into(), fp.into(), now.into(), now.into()],
    )
    .await?;
    Ok(())
}

async fn secrets_of<C: ConnectionTrait>(
    conn: &C,
    facts: &MapFacts,
    key: &str,
) -> Result<Vec<SecretInfo>, DbErr> {
    let mut out = Vec::new();
    for (name, integration) in &facts.secrets {
        if integration != key {
            continue;
        }
        let changed_at = db::query_one(
            conn,
            "SELECT changed_at FROM secret_fingerprints WHERE name = ?",
            vec![name.clone().into()],
        )
        .await?
        .map(|r| col::<i64>(&r, "changed_at"))
        .transpose()?;
        out.push(SecretInfo {
            name: name.clone(),
            changed_at,
        });
    }
    Ok(out)
}

/// The map for the running deployment.
#[tracing::instrument(skip_all, err)]
pub async fn build(st: &Portal) -> Result<Vec<MapRow>, DbErr> {
    let s = &st.settings;
    let facts = &s.map;
    let health = crate::ledger::health(&st.db).await?;
    let health_of = |k: &str| health.iter().find(|h| h.integration == k).cloned();
    let crm_fields: Vec<&str> = facts.crm_fields.iter().map(String::as_str).collect();
    let mut rows = vec![
        MapRow {
            key: "payments".into(),
            name: "Payments (Stripe)".into(),
            connected_to: match &facts.payments_standin {
                Some(url) => format!("local Stripe stand-in at {url}"),
                None => st.payments.describe(),
            },
            standin: facts.payments_standin.is_some(),
            flows: vec![
                flow("Deposit checkout", "portal → Stripe", &["booking id", "payment id", "customer id", "customer email", "amount", "currency", "description (service, staff, time)"], "real-time: when a customer books or presses Pay deposit"),
                flow("Payment facts", "Stripe → portal (signed webhooks)", &["session status", "payment status", "payment intent id", "amount paid", "card decline message", "refunded amount", "disputes"], "real-time: webhooks, stored then applied by a job"),
                flow("Reconciliation", "portal ↔ Stripe", &["open and recent Checkout Sessions"], &format!("scheduled: every {} minutes", facts.stripe_reconcile_minutes)),
                flow("Refunds", "portal → Stripe", &["payment intent id", "amount"], "real-time on cancellation within the policy; manual by staff and admins"),
            ],
            source_of_truth: vec![
                ("whether money moved (payments, refunds, disputes)".into(), "Stripe".into()),
                ("bookings, deposits owed, receipts".into(), "portal".into()),
            ],
            retry: retry_text(Integration::Payments),
            visibility: "customers: their own payments and receipts; staff: payments of their bookings (and refund them); admins: all, with CSV export".into(),
            secrets: secrets_of(&st.db, facts, "payments").await?,
            fallback: match facts.payments_fallback.as_str() {
                "pay_at_visit" => "When Stripe is unreachable, the booking is confirmed with the deposit due at the visit (shown to staff); staff can email a payment link later.".into(),
                _ => "When Stripe is unreachable, the slot stays held until the hold expires and the customer is asked to try again.".into(),
            },
            health: health_of("payments"),
            runbook: "payments".into(),
        },
        MapRow {
            key: "crm".into(),
            name: "CRM".into(),
            connected_to: match &facts.crm_standin {
                Some(url) => format!("local HubSpot stand-in at {url}"),
                None => st.crm.describe(),
            },
            standin: facts.crm_standin.is_some(),
            flows: if st.crm.kind() == "none" {
                vec![]
            } else {
                let mut f = vec![flow(
                    "Contact upsert",
                    &format!("portal → CRM (by {}, never by email)", facts.crm_id_property),
                    &crm_fields,
                    "real-time, coalesced: changes within 2 s go in one batch of up to 100",
                )];
                if st.crm.kind() == "hubspot" {
                    f.push(flow("CRM-owned fields", "CRM → portal (signed webhooks)", &["lifecycle stage", "owner", "tags"], "real-time: HubSpot webhooks"));
                }
                f.push(flow("Resync", "portal → CRM", &crm_fields, "manual: `stoep crm resync`"));
                f
            },
            source_of_truth: vec![
                ("name, email, phone, company, consents, booking and payment facts".into(), "portal (changes made in the CRM are overwritten and recorded)".into()),
                ("lifecycle stage, owner, tags".into(), "CRM (never pushed; shown to admins)".into()),
            ],
            retry: retry_text(Integration::Crm),
            visibility: "admins (people page, health area); the CRM's own users see what is pushed".into(),
            secrets: secrets_of(&st.db, facts, "crm").await?,
            fallback: "When the CRM is down nothing changes for customers; changes wait in the queue and are pushed when it recovers.".into(),
            health: health_of("crm"),
            runbook: "crm".into(),
        },
        MapRow {
            key: "email".into(),
            name: "Email (SMTP)".into(),
            connected_to: match &facts.mail_standin {
                Some(addr) => format!("local mail catcher on {addr}"),
                None => st.mail.describe(),
            },
            standin: facts.mail_standin.is_some(),
            flows: vec![
                flow("Transactional email", "portal → SMTP relay → customer", &["recipient address and name", "subject and body (booking, receipt, account messages)", "calendar file"], "real-time: rendered when the change commits, sent by a job"),
                flow("Alert digest", "portal → admins", &["integration problems"], "scheduled: at most one per minute"),
            ],
            source_of_truth: vec![("what was sent and when".into(), "portal (the outbox)".into())],
            retry: retry_text(Integration::Email),
            visibility: "the recipient; admins see the outbox (addresses masked) and the mail catcher".into(),
            secrets: secrets_of(&st.db, facts, "email").await?,
            fallback: "When email is down, messages wait in the outbox and the customer's account page shows what each email says.".into(),
            health: health_of("email"),
            runbook: "email".into(),
        },
        MapRow {
            key: "calendar".into(),
            name: "Calendar feeds".into(),
            connected_to: "served by the portal (iCalendar subscription links and .ics attachments)".into(),
            standin: false,
            flows: vec![flow("Booking calendar", "portal → the user's calendar app", &["service", "staff", "start and end", "booking link"], "on demand: the calendar app polls the private feed link")],
            source_of_truth: vec![("bookings".into(), "portal".into())],
            retry: "not applicable: calendar apps fetch the feed themselves".into(),
            visibility: "each user's own bookings, by a secret link they can revoke".into(),
            secrets: vec![],
            fallback: "None needed: the feed is served by the portal itself.".into(),
            health: health_of("calendar"),
            runbook: "calendar".into(),
        },
    ];
    if let Some(storage) = &s.storage_description {
        rows.insert(
            3,
            MapRow {
                key: "storage".into(),
                name: "Document storage".into(),
                connected_to: storage.clone(),
                standin: storage.starts_with("local folder"),
                flows: vec![flow("Documents", "portal ↔ object store", &["file content", "portal-generated object key"], "real-time: uploads and downloads; deletions by a job")],
                source_of_truth: vec![
                    ("document metadata (owner, category, type, size, SHA-256)".into(), "portal".into()),
                    ("document content".into(), "object store".into()),
                ],
                retry: retry_text(Integration::Storage),
                visibility: "customers: their own and those shared with them; staff and admins: customers' documents (each access audited)".into(),
                secrets: secrets_of(&st.db, facts, "storage").await?,
                fallback: "When storage is down, uploads are refused with a clear message and downloads say to try again shortly.".into(),
                health: health_of("storage"),
                runbook: "storage".into(),
            },
        );
    }
    Ok(rows)
}

/// The map as Markdown, for the business's own handover documents.
pub fn to_markdown(rows: &[MapRow], business: &str, at: &str) -> String {
    let mut md = format!("# Integration map: {business}\n\nGenerated by the portal on {at}.\n\n");
    for r in rows {
        md.push_str(&format!("## {}\n\n", r.name));
        md.push_str(&format!(
            "- **Connected to:** {}{}\n",
            r.connected_to,
            if r.standin { " (local stand-in)" } else { "" }
        ));
        if let Some(h) = &r.health {
            md.push_str(&format!("- **Health:** {} ({})\n", h.state, h.reason));
        }
        md.push_str(&format!("- **Retries:** {}\n", r.retry));
        md.push_str(&format!("- **Fallback:** {}\n", r.fallback));
        md.push_str(&format!("- **Who can see the data:** {}\n", r.visibility));
        if r.secrets.is_empty() {
            md.push_str("- **Secrets:** none\n");
        }
        for s in &r.secrets {
            md.push_str(&format!(
                "- **Secret:** `{}`{}\n",
                s.name,
                s.changed_at
                    .map(|t| format!(", value last changed {}", model::format_ms(t)))
                    .unwrap_or_default()
            ));
        }
        md.push_str(&format!(
            "- **Runbook:** docs/runbooks/{}.md\n\n",
            r.runbook
        ));
        if !r.flows.is_empty() {
            md.push_str("| flow | direction | fields | when |\n|---|---|---|---|\n");
            for f in &r.flows {
                md.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    f.what,
                    f.direction,
                    f.fields.join(", "),
                    f.timing
                ));
            }
            md.push('\n');
        }
        md.push_str("| data | source of truth |\n|---|---|\n");
        for (d, s) in &r.source_of_truth {
            md.push_str(&format!("| {d} | {s} |\n"));
        }
        md.push('\n');
    }
    md
}

/// Runs one integration's connection test (bounded to a few seconds) and audits it.
#[tracing::instrument(skip_all, err)]
pub async fn test_connection(
    st: &Portal,
    key: &str,
    actor: i64,
) -> Result<Result<String, String>, DbErr> {
    let limit = std::time::Duration::from_secs(8);
    let run = async {
        match key {
            "payments" => st
                .payments
                .test_connection()
                .await
                .map_err(|e| format!("Stripe: {e}")),
            "crm" => st
                .crm
                .test_connection()
                .await
                .map_err(|e| format!("CRM: {e}")),
            "email" => st
                .mail
                .test_connection()
                .await
                .map_err(|e| format!("SMTP: {e}")),
            "storage" => st
                .storage
                .test_connection()
                .await
                .map_err(|e| format!("storage: {e}")),
            "calendar" => {
                Ok("Calendar feeds are served by the portal itself: nothing to connect to.".into())
            }
            _ => Err("unknown integration".into()),
        }
    };
    let result = match tokio::time::timeout(limit, run).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {} seconds (a wrong address, a firewall, or the service is down)",
            limit.as_secs()
        )),
    };
    crate::audit::record(
        &st.db,
        Some(actor),
        "integration.test",
        "integration",
        key,
        &match &result {
            Ok(m) => format!("succeeded: {m}"),
            Err(m) => format!("failed: {m}"),
        },
    )
    .await?;
    Ok(result)
}
