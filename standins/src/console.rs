//! The domain's `StandinConsole` for the stand-ins that run in this process (mail, Stripe,
//! HubSpot, PayFast, Paystack, WhatsApp, BulkSMS, Google Calendar, Microsoft Graph, Xero): their state in words, their own pages, their fault switches,
//! and the mail catcher's mailbox. Built by the
//! binary only when at least one stand-in runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use domain::ports::StandinConsole;
use domain::ports::console::StandinInfo;
use futures_util::future::BoxFuture;
use model::CaughtMail;

use crate::controls::{SmtpMode, StandinControls};

/// Which stand-ins run, and where. `Default` is "none runs", so a caller can name only those
/// it starts (`Console { stripe_url, ..Default::default() }`).
#[derive(Default)]
pub struct Console {
    pub controls: Arc<StandinControls>,
    /// The mail catcher's folder, when it runs.
    pub mail_dir: Option<PathBuf>,
    /// The Stripe stand-in's base URL, when it runs.
    pub stripe_url: Option<String>,
    /// The HubSpot stand-in's base URL, when it runs.
    pub crm_url: Option<String>,
    /// The PayFast stand-in's base URL, when it runs.
    pub payfast_url: Option<String>,
    /// The Paystack stand-in's base URL, when it runs.
    pub paystack_url: Option<String>,
    /// The WhatsApp Cloud API stand-in's base URL, when it runs.
    pub whatsapp_url: Option<String>,
    /// The BulkSMS stand-in's base URL, when it runs.
    pub sms_url: Option<String>,
    /// The Google Calendar stand-in's base URL, when it runs.
    pub google_url: Option<String>,
    /// The Microsoft Graph calendar stand-in's base URL, when it runs.
    pub graph_url: Option<String>,
    /// The Xero stand-in's base URL, when it runs.
    pub xero_url: Option<String>,
}

/// The faults both calendar stand-ins offer (besides [`WEBHOOK_FAULTS`]).
const CALENDAR_FAULTS: [(&str, &str); 10] = [
    ("normal", "normal"),
    ("api_down", "API down"),
    ("fail_next", "fail the next 3 calls"),
    (
        "rate_limit",
        "rate-limit the next 10 calls (Google: 403, no Retry-After; Graph: 429)",
    ),
    (
        "rate_limit_429",
        "429 storm: the next 10 calls, Retry-After 5 s",
    ),
    ("revoke_grants", "revoke every grant (invalid_grant)"),
    ("expire_access_tokens", "expire every access token (401)"),
    ("expire_sync_tokens", "expire every sync token (410)"),
    ("delete_calendar", "delete a secondary calendar"),
    ("meeting_link_late", "meeting links arrive late"),
];

/// Sets one of [`CALENDAR_FAULTS`] or [`WEBHOOK_FAULTS`]; `false` if `fault` is neither.
fn set_calendar_fault(f: &crate::controls::CalendarFaults, fault: &str) -> bool {
    match fault {
        "normal" => f.reset(),
        "api_down" => f.api_down.store(true, Relaxed),
        "fail_next" => f.fail_next.store(3, Relaxed),
        "rate_limit" => {
            f.rate_limit_429.store(false, Relaxed);
            f.retry_after_secs.store(0, Relaxed);
            f.rate_limit_next.store(10, Relaxed);
        }
        "rate_limit_429" => {
            f.rate_limit_429.store(true, Relaxed);
            f.retry_after_secs.store(5, Relaxed);
            f.rate_limit_next.store(10, Relaxed);
        }
        "revoke_grants" => f.revoke_all_grants(),
        "expire_access_tokens" => f.expire_access_tokens(),
        "expire_sync_tokens" => f.expire_sync_tokens(),
        "delete_calendar" => f.delete_calendar_next.store(true, Relaxed),
        "meeting_link_late" => f.meeting_link_late.store(true, Relaxed),
        other => return set_webhook_fault(&f.webhooks, other),
    }
    true
}

/// The calendar faults and the webhook ones, for the console's list.
fn calendar_fault_pairs() -> Vec<(String, String)> {
    let mut faults = pairs(&CALENDAR_FAULTS);
    faults.extend(pairs(&WEBHOOK_FAULTS));
    faults
}

/// The Xero stand-in's faults and "done in Xero" actions, as the admin page offers them.
const XERO_FAULTS: [(&str, &str); 11] = [
    ("normal", "normal"),
    ("api_down", "API down (503)"),
    ("fail_next", "fail the next 3 calls (500)"),
    (
        "rate_limit",
        "429 storm: the next 10 calls, Retry-After 5 s",
    ),
    ("fail_next_invoice", "the next invoice fails validation"),
    ("slow", "hold each call 2 s (reach the 5-in-flight limit)"),
    ("edit_latest_invoice", "edit the latest invoice in Xero"),
    ("revoke_grants", "disconnect the app in Xero"),
    ("pause_webhooks", "pause webhooks"),
    ("drop_next_webhooks", "drop the next 3 webhooks"),
    ("duplicate_webhooks", "send each webhook 3 times"),
];

/// The webhook faults both messaging stand-ins offer.
const WEBHOOK_FAULTS: [(&str, &str); 5] = [
    ("pause_webhooks", "pause webhooks"),
    ("drop_next_webhooks", "lose the next 3 webhooks"),
    ("duplicate_webhooks", "send each webhook 3 times"),
    ("shuffle_webhooks", "reorder webhooks"),
    ("delay_webhooks", "delay webhooks by 2 s"),
];

/// Sets one of [`WEBHOOK_FAULTS`]; `false` if `fault` is not one.
fn set_webhook_fault(f: &crate::controls::WebhookFaults, fault: &str) -> bool {
    match fault {
        "pause_webhooks" => f.paused.store(true, Relaxed),
        "drop_next_webhooks" => f.drop_next.store(3, Relaxed),
        "duplicate_webhooks" => f.duplicate.store(2, Relaxed),
        "shuffle_webhooks" => f.shuffle.store(true, Relaxed),
        "delay_webhooks" => f.delay_ms.store(2000, Relaxed),
        _ => return false,
    }
    true
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

impl StandinConsole for Console {
    fn list(&self) -> Vec<StandinInfo> {
        let mut out = Vec::new();
        if self.mail_dir.is_some() {
            out.push(StandinInfo {
                key: "smtp".into(),
                name: "mail catcher".into(),
                state: self.controls.smtp_mode().as_str().into(),
                page_url: None,
                faults: pairs(&[
                    ("accept", "accept every message"),
                    ("unavailable", "answer 421 (transient)"),
                    ("reject", "answer 550 (permanent)"),
                ]),
            });
        }
        if let Some(url) = &self.stripe_url {
            out.push(StandinInfo {
                key: "stripe".into(),
                name: "Stripe".into(),
                state: self.controls.stripe.describe(),
                page_url: Some(format!("{url}/_standin")),
                faults: pairs(&[
                    ("normal", "normal"),
                    ("api_down", "API down"),
                    ("fail_next_api_calls", "fail the next 3 API calls"),
                    ("pause_webhooks", "pause webhooks"),
                    ("drop_next_webhooks", "drop the next 3 webhooks"),
                    ("duplicate_webhooks", "send each webhook 3 times"),
                    ("shuffle_webhooks", "shuffle webhooks"),
                ]),
            });
        }
        if let Some(url) = &self.crm_url {
            out.push(StandinInfo {
                key: "crm".into(),
                name: "HubSpot".into(),
                state: self.controls.crm.describe(),
                page_url: Some(format!("{url}/_standin")),
                faults: pairs(&[
                    ("normal", "normal"),
                    ("down", "down"),
                    ("rate_limit", "rate-limit the next 10 calls"),
                    ("fail_next", "fail the next 5 calls"),
                ]),
            });
        }
        if let Some(url) = &self.payfast_url {
            out.push(StandinInfo {
                key: "payfast".into(),
                name: "PayFast".into(),
                state: self.controls.payfast.describe(),
                page_url: Some(format!("{url}/_standin")),
                faults: pairs(&[
                    ("normal", "normal"),
                    ("api_down", "API down"),
                    ("fail_next_api_calls", "fail the next 3 API calls"),
                    ("validate_invalid", "ITN validation answers INVALID"),
                    ("validate_timeout", "ITN validation times out"),
                    ("pause_notifications", "pause ITNs"),
                    ("drop_next_notifications", "drop the next 3 ITNs"),
                    ("duplicate_notifications", "send each ITN 3 times"),
                    ("delay_notifications", "delay each ITN 5 seconds"),
                    ("shuffle_notifications", "shuffle ITNs"),
                ]),
            });
        }
        if let Some(url) = &self.paystack_url {
            out.push(StandinInfo {
                key: "paystack".into(),
                name: "Paystack".into(),
                state: self.controls.paystack.describe(),
                page_url: Some(format!("{url}/_standin")),
                faults: pairs(&[
                    ("normal", "normal"),
                    ("api_down", "API down"),
                    ("fail_next_api_calls", "fail the next 3 API calls"),
                    ("fail_next_refund", "the next refund fails"),
                    ("refund_needs_attention", "the next refund needs attention"),
                    ("pause_webhooks", "pause webhooks"),
                    ("drop_next_webhooks", "drop the next 3 webhooks"),
                    ("duplicate_webhooks", "send each webhook 3 times"),
                    ("delay_webhooks", "delay each webhook 5 seconds"),
                    ("shuffle_webhooks", "shuffle webhooks"),
                ]),
            });
        }
        if let Some(url) = &self.whatsapp_url {
            let mut faults = pairs(&[
                ("normal", "normal"),
                ("api_down", "API down"),
                ("fail_next", "fail the next 3 calls"),
                (
                    "rate_limit",
                    "rate-limit the next 10 sends (400 130429, as Meta does)",
                ),
                (
                    "rate_limit_429",
                    "429 storm: the next 10 sends, Retry-After 5 s",
                ),
                ("reject_templates", "reject every template (132001)"),
                ("window_error_sync", "window errors (131047) synchronous"),
            ]);
            faults.extend(pairs(&WEBHOOK_FAULTS));
            out.push(StandinInfo {
                key: "whatsapp".into(),
                name: "WhatsApp".into(),
                state: self.controls.whatsapp.describe(),
                page_url: Some(format!("{url}/_standin")),
                faults,
            });
        }
        if let Some(url) = &self.xero_url {
            out.push(StandinInfo {
                key: "xero".into(),
                name: "Xero".into(),
                state: self.controls.xero.describe(),
                page_url: Some(format!("{url}/_standin")),
                faults: pairs(&XERO_FAULTS),
            });
        }
        if let Some(url) = &self.sms_url {
            let mut faults = pairs(&[
                ("normal", "normal"),
                ("api_down", "API down"),
                ("fail_next", "fail the next 3 calls"),
                (
                    "rate_limit",
                    "429 storm: the next 10 calls, Retry-After 5 s",
                ),
            ]);
            faults.extend(pairs(&WEBHOOK_FAULTS));
            out.push(StandinInfo {
                key: "sms".into(),
                name: "BulkSMS".into(),
                state: self.controls.sms.describe(),
                page_url: Some(format!("{url}/_standin")),
                faults,
            });
        }
        if let Some(url) = &self.google_url {
            out.push(StandinInfo {
                key: "google".into(),
                name: "Google Calendar".into(),
                state: self.controls.google.describe(),
                page_url: Some(format!("{url}/_standin")),
                faults: calendar_fault_pairs(),
            });
        }
        if let Some(url) = &self.graph_url {
            out.push(StandinInfo {
                key: "graph".into(),
                name: "Microsoft 365 (Graph)".into(),
                state: self.controls.graph.describe(),
                page_url: Some(format!("{url}/_standin")),
                faults: calendar_fault_pairs(),
            });
        }
        out
    }

    fn set_fault(&self, key: &str, fault: &str) -> Result<(), String> {
        match key {
            "smtp" => {
                if self.mail_dir.is_none() {
                    return Err(
                        "A real SMTP relay is configured; there is no stand-in to switch.".into(),
                    );
                }
                let mode = SmtpMode::parse(fault)
                    .ok_or_else(|| "Choose accept, unavailable or reject.".to_string())?;
                self.controls.set_smtp_mode(mode);
            }
            "stripe" => {
                if self.stripe_url.is_none() {
                    return Err(
                        "Real Stripe keys are configured; there is no stand-in to switch.".into(),
                    );
                }
                let f = &self.controls.stripe;
                match fault {
                    "normal" => f.reset(),
                    "api_down" => f.api_down.store(true, Relaxed),
                    "fail_next_api_calls" => f.fail_next_api_calls.store(3, Relaxed),
                    "pause_webhooks" => f.webhooks_paused.store(true, Relaxed),
                    "drop_next_webhooks" => f.drop_next_webhooks.store(3, Relaxed),
                    "duplicate_webhooks" => f.duplicate_webhooks.store(2, Relaxed),
                    "shuffle_webhooks" => f.shuffle_webhooks.store(true, Relaxed),
                    _ => return Err("Unknown Stripe fault.".into()),
                }
            }
            "crm" => {
                if self.crm_url.is_none() {
                    return Err("A real CRM is configured; there is no stand-in to switch.".into());
                }
                let f = &self.controls.crm;
                match fault {
                    "normal" => f.reset(),
                    "down" => f.down.store(true, Relaxed),
                    "rate_limit" => {
                        f.rate_limit_next.store(10, Relaxed);
                        f.retry_after_secs.store(5, Relaxed);
                    }
                    "fail_next" => f.fail_next.store(5, Relaxed),
                    _ => return Err("Unknown CRM fault.".into()),
                }
            }
            "payfast" => {
                if self.payfast_url.is_none() {
                    return Err(
                        "Real PayFast credentials are configured; there is no stand-in to switch."
                            .into(),
                    );
                }
                let f = &self.controls.payfast;
                let n = &f.notifications;
                match fault {
                    "normal" => f.reset(),
                    "api_down" => f.api_down.store(true, Relaxed),
                    "fail_next_api_calls" => f.fail_next_api_calls.store(3, Relaxed),
                    "validate_invalid" => f.validate_invalid.store(true, Relaxed),
                    "validate_timeout" => f.validate_timeout.store(true, Relaxed),
                    "pause_notifications" => n.paused.store(true, Relaxed),
                    "drop_next_notifications" => n.drop_next.store(3, Relaxed),
                    "duplicate_notifications" => n.duplicate.store(2, Relaxed),
                    "delay_notifications" => n.delay_ms.store(5_000, Relaxed),
                    "shuffle_notifications" => n.shuffle.store(true, Relaxed),
                    _ => return Err("Unknown PayFast fault.".into()),
                }
            }
            "paystack" => {
                if self.paystack_url.is_none() {
                    return Err(
                        "Real Paystack keys are configured; there is no stand-in to switch.".into(),
                    );
                }
                let f = &self.controls.paystack;
                let w = &f.webhooks;
                match fault {
                    "normal" => f.reset(),
                    "api_down" => f.api_down.store(true, Relaxed),
                    "fail_next_api_calls" => f.fail_next_api_calls.store(3, Relaxed),
                    "fail_next_refund" => f.fail_next_refunds.store(1, Relaxed),
                    "refund_needs_attention" => f.needs_attention_next_refunds.store(1, Relaxed),
                    "pause_webhooks" => w.paused.store(true, Relaxed),
                    "drop_next_webhooks" => w.drop_next.store(3, Relaxed),
                    "duplicate_webhooks" => w.duplicate.store(2, Relaxed),
                    "delay_webhooks" => w.delay_ms.store(5_000, Relaxed),
                    "shuffle_webhooks" => w.shuffle.store(true, Relaxed),
                    _ => return Err("Unknown Paystack fault.".into()),
                }
            }
            "whatsapp" => {
                if self.whatsapp_url.is_none() {
                    return Err(
                        "A real WhatsApp account is configured; there is no stand-in to switch."
                            .into(),
                    );
                }
                let f = &self.controls.whatsapp;
                match fault {
                    "normal" => f.reset(),
                    "api_down" => f.api_down.store(true, Relaxed),
                    "fail_next" => f.fail_next.store(3, Relaxed),
                    "rate_limit" => {
                        f.rate_limit_http_429.store(false, Relaxed);
                        f.retry_after_secs.store(0, Relaxed);
                        f.rate_limit_next.store(10, Relaxed);
                    }
                    "rate_limit_429" => {
                        f.rate_limit_http_429.store(true, Relaxed);
                        f.retry_after_secs.store(5, Relaxed);
                        f.rate_limit_next.store(10, Relaxed);
                    }
                    "reject_templates" => f.reject_templates.store(true, Relaxed),
                    "window_error_sync" => f.window_error_sync.store(true, Relaxed),
                    other if set_webhook_fault(&f.webhooks, other) => {}
                    _ => return Err("Unknown WhatsApp fault.".into()),
                }
            }
            "sms" => {
                if self.sms_url.is_none() {
                    return Err(
                        "A real SMS account is configured; there is no stand-in to switch.".into(),
                    );
                }
                let f = &self.controls.sms;
                match fault {
                    "normal" => f.reset(),
                    "api_down" => f.api_down.store(true, Relaxed),
                    "fail_next" => f.fail_next.store(3, Relaxed),
                    "rate_limit" => {
                        f.retry_after_secs.store(5, Relaxed);
                        f.rate_limit_next.store(10, Relaxed);
                    }
                    other if set_webhook_fault(&f.webhooks, other) => {}
                    _ => return Err("Unknown SMS fault.".into()),
                }
            }
            "google" => {
                if self.google_url.is_none() {
                    return Err(
                        "A real Google project is configured; there is no stand-in to switch."
                            .into(),
                    );
                }
                if !set_calendar_fault(&self.controls.google, fault) {
                    return Err("Unknown Google Calendar fault.".into());
                }
            }
            "graph" => {
                if self.graph_url.is_none() {
                    return Err(
                        "A real Microsoft app is configured; there is no stand-in to switch."
                            .into(),
                    );
                }
                if !set_calendar_fault(&self.controls.graph, fault) {
                    return Err("Unknown Microsoft Graph fault.".into());
                }
            }
            "xero" => {
                if self.xero_url.is_none() {
                    return Err(
                        "A real Xero connection is configured; there is no stand-in to switch."
                            .into(),
                    );
                }
                let f = &self.controls.xero;
                match fault {
                    "normal" => f.reset(),
                    "api_down" => f.api_down.store(true, Relaxed),
                    "fail_next" => f.fail_next.store(3, Relaxed),
                    "rate_limit" => {
                        f.retry_after_secs.store(5, Relaxed);
                        f.rate_limit_next.store(10, Relaxed);
                    }
                    "fail_next_invoice" => {
                        f.fail_next_invoice_validation.fetch_add(1, Relaxed);
                    }
                    "slow" => f.delay_ms.store(2_000, Relaxed),
                    "edit_latest_invoice" => {
                        f.edit_latest_invoice.fetch_add(1, Relaxed);
                    }
                    "revoke_grants" => f.revoke_grants.store(true, Relaxed),
                    "pause_webhooks" => f.webhooks.paused.store(true, Relaxed),
                    "drop_next_webhooks" => f.webhooks.drop_next.store(3, Relaxed),
                    "duplicate_webhooks" => f.webhooks.duplicate.store(2, Relaxed),
                    _ => return Err("Unknown Xero fault.".into()),
                }
            }
            _ => {
                return Err(
                    "Choose stripe, crm, payfast, paystack, whatsapp, sms, google, graph or xero."
                        .into(),
                );
            }
        }
        Ok(())
    }

    fn caught_mail(&self, limit: usize) -> BoxFuture<'_, Vec<CaughtMail>> {
        Box::pin(async move {
            match &self.mail_dir {
                Some(dir) => crate::mailbox::read_all(dir, limit).await,
                None => Vec::new(),
            }
        })
    }

    fn caught_raw(&self, id: &str) -> BoxFuture<'_, Option<String>> {
        let id = id.to_owned();
        Box::pin(async move {
            let dir = self.mail_dir.as_ref()?;
            let raw = crate::mailbox::read_raw(dir, &id).await?;
            Some(String::from_utf8_lossy(&raw).into_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(messaging: bool) -> Console {
        Console {
            controls: Arc::default(),
            mail_dir: None,
            stripe_url: None,
            crm_url: None,
            whatsapp_url: messaging.then(|| "http://127.0.0.1:1".to_owned()),
            sms_url: messaging.then(|| "http://127.0.0.1:2".to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn messaging_faults_are_listed_set_and_reset() {
        let c = console(true);
        let keys: Vec<String> = c.list().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["whatsapp", "sms"]);
        c.set_fault("whatsapp", "rate_limit_429").expect("known");
        c.set_fault("whatsapp", "duplicate_webhooks")
            .expect("known");
        let state = c.controls.whatsapp.describe();
        assert!(
            state.contains("(429)") && state.contains("3 times"),
            "{state}"
        );
        c.set_fault("sms", "drop_next_webhooks").expect("known");
        assert_eq!(c.controls.sms.describe(), "next 3 webhooks lost");
        c.set_fault("sms", "normal").expect("known");
        c.set_fault("whatsapp", "normal").expect("known");
        assert_eq!(c.controls.sms.describe(), "normal");
        assert_eq!(c.controls.whatsapp.describe(), "normal");
        assert!(c.set_fault("whatsapp", "bogus").is_err());
        assert!(console(false).set_fault("sms", "api_down").is_err());
        assert!(console(false).list().is_empty());
    }

    #[test]
    fn calendar_faults_are_listed_set_and_reset() {
        let c = Console {
            google_url: Some("http://127.0.0.1:3".into()),
            graph_url: Some("http://127.0.0.1:4".into()),
            ..Default::default()
        };
        let keys: Vec<String> = c.list().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["google", "graph"]);
        c.set_fault("google", "rate_limit_429").expect("known");
        c.set_fault("google", "drop_next_webhooks").expect("known");
        let state = c.controls.google.describe();
        assert!(
            state.contains("Retry-After 5 s") && state.contains("lost"),
            "{state}"
        );
        let before = c.controls.graph.sync_epoch.load(Relaxed);
        c.set_fault("graph", "expire_sync_tokens").expect("known");
        assert_eq!(c.controls.graph.sync_epoch.load(Relaxed), before + 1);
        c.set_fault("google", "normal").expect("known");
        assert_eq!(c.controls.google.describe(), "normal");
        assert!(c.set_fault("graph", "bogus").is_err());
        assert!(console(false).set_fault("google", "api_down").is_err());
    }

    #[test]
    fn xero_faults_and_actions_are_listed_set_and_reset() {
        let c = Console {
            xero_url: Some("http://127.0.0.1:3".to_owned()),
            ..Default::default()
        };
        let info = c.list();
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].key, "xero");
        assert_eq!(
            info[0].page_url.as_deref(),
            Some("http://127.0.0.1:3/_standin")
        );
        assert!(
            info[0]
                .faults
                .iter()
                .any(|(k, _)| k == "edit_latest_invoice")
        );
        for (code, _) in &info[0].faults {
            c.set_fault("xero", code)
                .expect("every listed fault can be set");
        }
        let state = c.controls.xero.describe();
        assert!(state.contains("invoice edits in Xero pending"), "{state}");
        assert!(state.contains("grant revocation pending"), "{state}");
        c.set_fault("xero", "normal").expect("known");
        assert_eq!(c.controls.xero.describe(), "normal");
        assert!(c.set_fault("xero", "bogus").is_err());
        assert!(console(false).set_fault("xero", "api_down").is_err());
    }
}
