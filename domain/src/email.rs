//! Composing transactional email and putting it in the outbox.
//!
//! A message is rendered when the change that causes it commits, stored in `emails`, and sent by
//! an `email.send` job from the integration ledger (the server crate's SMTP handler). Rendering
//! up front means a resend sends exactly what was meant, and what a message said can be shown in
//! the portal while the relay is down. Messages that carry a one-time link are marked
//! `redact_after_send`: their bodies are blanked once the relay has accepted them.

use sea_orm::{ConnectionTrait, DbErr};

use crate::db::{self, col, now_ms};
use crate::ledger::{self, NewJob, Subject};
use crate::settings::PortalSettings;
use model::Branding;

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Makes a value safe for a single-line header: control characters (CR and LF included) become
/// spaces and the result is cut to `max` characters, so a name or subject cannot inject headers.
pub fn header_safe(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max)
        .collect()
}

/// A rendered message, ready for the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub template: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachment: Option<Attachment>,
    /// True for messages that carry a one-time secret link.
    pub secret: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub body: String,
}

/// A paragraph or a call to action in a message.
pub enum Block<'a> {
    Para(String),
    Button { label: &'a str, url: String },
}

/// Lays out a message in the business's branding. Text in `blocks` is escaped here.
pub fn layout(
    branding: &Branding,
    public_url: &str,
    template: &'static str,
    subject: &str,
    blocks: &[Block<'_>],
    secret: bool,
) -> Rendered {
    let name = escape_html(&branding.business_name);
    let colour = if is_hex_colour(&branding.primary_colour) {
        branding.primary_colour.as_str()
    } else {
        "#1f5f8b"
    };
    let logo = branding
        .logo_url
        .as_deref()
        .map(|u| {
            format!(
                r#"<img src="{}" alt="{name}" height="40"><br>"#,
                escape_html(&absolute(public_url, u))
            )
        })
        .unwrap_or_default();
    let mut html_body = String::new();
    let mut text = String::new();
    for block in blocks {
        match block {
            Block::Para(p) => {
                html_body.push_str(&format!(
                    "<p style=\"margin:0 0 16px\">{}</p>",
                    escape_html(p)
                ));
                text.push_str(p);
                text.push_str("\n\n");
            }
            Block::Button { label, url } => {
                html_body.push_str(&format!(
                    "<p style=\"margin:0 0 16px\"><a href=\"{}\" style=\"background:{colour};color:#fff;padding:10px 18px;border-radius:6px;text-decoration:none;display:inline-block\">{}</a></p>",
                    escape_html(url),
                    escape_html(label)
                ));
                text.push_str(&format!("{label}: {url}\n\n"));
            }
        }
    }
    text.push_str(&format!("-- \n{}\n{public_url}\n", branding.business_name));
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{subj}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;color:#1b1b1b;background:#f6f6f4;margin:0;padding:24px\">\
         <div style=\"max-width:560px;margin:0 auto;background:#fff;border-top:4px solid {colour};padding:24px;border-radius:8px\">\
         <div style=\"margin-bottom:16px\">{logo}<strong style=\"font-size:18px\">{name}</strong></div>{html_body}\
         <p style=\"color:#666;font-size:13px;margin-top:24px\">{name} &middot; <a href=\"{url}\">{url}</a></p></div></body></html>",
        subj = escape_html(subject),
        url = escape_html(public_url),
    );
    Rendered {
        template: template.into(),
        subject: header_safe(subject, 200),
        text,
        html,
        attachment: None,
        secret,
    }
}

fn is_hex_colour(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
}

fn absolute(public_url: &str, link: &str) -> String {
    if link.starts_with("http://") || link.starts_with("https://") {
        link.to_owned()
    } else {
        format!(
            "{}/{}",
            public_url.trim_end_matches('/'),
            link.trim_start_matches('/')
        )
    }
}

/// The messages the portal sends. Each builds from the settings and a few values.
pub mod templates {
    use super::*;

    pub fn verify_email(s: &PortalSettings, name: &str, token: &str) -> Rendered {
        let url = format!("{}/verify-email?token={token}", s.public_url);
        layout(&s.branding, &s.public_url, "verify_email", &format!("Confirm your email for {}", s.branding.business_name), &[
            Block::Para(format!("Hi {name},")),
            Block::Para("Please confirm your email address so you can book. The link works for 24 hours.".into()),
            Block::Button { label: "Confirm my email", url },
            Block::Para("If you didn't sign up, ignore this message; nothing happens.".into()),
        ], true)
    }

    pub fn welcome(s: &PortalSettings, name: &str) -> Rendered {
        layout(&s.branding, &s.public_url, "welcome", &format!("Welcome to {}", s.branding.business_name), &[
            Block::Para(format!("Hi {name},")),
            Block::Para("Your email is confirmed. You can now book, pay deposits and exchange documents with us.".into()),
            Block::Button { label: "Go to my dashboard", url: format!("{}/", s.public_url) },
        ], false)
    }

    pub fn password_reset(s: &PortalSettings, name: &str, token: &str) -> Rendered {
        let url = format!("{}/reset-password?token={token}", s.public_url);
        layout(&s.branding, &s.public_url, "password_reset", &format!("Reset your {} password", s.branding.business_name), &[
            Block::Para(format!("Hi {name},")),
            Block::Para("Someone (hopefully you) asked to reset your password. The link works once, for one hour.".into()),
            Block::Button { label: "Choose a new password", url },
            Block::Para("If it wasn't you, ignore this message: your password stays as it is.".into()),
        ], true)
    }

    pub fn signup_existing(s: &PortalSettings, name: &str) -> Rendered {
        layout(&s.branding, &s.public_url, "signup_existing", &format!("You already have an account with {}", s.branding.business_name), &[
            Block::Para(format!("Hi {name},")),
            Block::Para("Someone tried to create an account with this email address, which already has one. If it was you, sign in, or reset your password if you have forgotten it.".into()),
            Block::Button { label: "Sign in", url: format!("{}/signin", s.public_url) },
            Block::Para("If it wasn't you, you can ignore this message; nothing has changed.".into()),
        ], false)
    }

    pub fn password_changed(s: &PortalSettings, name: &str) -> Rendered {
        layout(
            &s.branding,
            &s.public_url,
            "password_changed",
            &format!("Your {} password was changed", s.branding.business_name),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(
                    "Your password was just changed, and every other signed-in session was ended."
                        .into(),
                ),
                Block::Para("If you didn't do this, reset your password now and tell us.".into()),
                Block::Button {
                    label: "Reset my password",
                    url: format!("{}/forgot-password", s.public_url),
                },
            ],
            false,
        )
    }

    pub fn email_change_confirm(s: &PortalSettings, name: &str, token: &str) -> Rendered {
        let url = format!("{}/confirm-email-change?token={token}", s.public_url);
        layout(&s.branding, &s.public_url, "email_change_confirm", &format!("Confirm your new email for {}", s.branding.business_name), &[
            Block::Para(format!("Hi {name},")),
            Block::Para("Please confirm that you want to use this address for your account. The link works for 24 hours.".into()),
            Block::Button { label: "Use this address", url },
            Block::Para("If you didn't ask for this, ignore this message; nothing changes.".into()),
        ], true)
    }

    pub fn email_change_notice(s: &PortalSettings, name: &str, new_masked: &str) -> Rendered {
        layout(
            &s.branding,
            &s.public_url,
            "email_change_notice",
            &format!(
                "Your {} email address is changing",
                s.branding.business_name
            ),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(format!(
                    "Someone asked to move your account to {new_masked}. It changes only once the new address is confirmed."
                )),
                Block::Para("If this wasn't you, reset your password now and tell us.".into()),
                Block::Button {
                    label: "Reset my password",
                    url: format!("{}/forgot-password", s.public_url),
                },
            ],
            false,
        )
    }

    pub fn staff_invitation(
        s: &PortalSettings,
        name: &str,
        inviter: &str,
        token: &str,
    ) -> Rendered {
        let url = format!("{}/accept-invitation?token={token}", s.public_url);
        layout(&s.branding, &s.public_url, "staff_invitation", &format!("You're invited to {}'s portal", s.branding.business_name), &[
            Block::Para(format!("Hi {name},")),
            Block::Para(format!("{inviter} has invited you to join {} as a member of staff. Choose a password to get started; the link works for 7 days.", s.branding.business_name)),
            Block::Button { label: "Accept the invitation", url },
            Block::Para("When you first sign in you'll set up two-step verification with an authenticator app on your phone.".into()),
        ], true)
    }

    use crate::records::{BookingView, Business, local_time, money};

    fn when(biz: &Business, b: &BookingView) -> String {
        format!("{} ({})", local_time(b.start_ms, biz.tz), biz.tz.name())
    }

    pub fn booking_confirmed(
        s: &PortalSettings,
        biz: &Business,
        name: &str,
        b: &BookingView,
    ) -> Rendered {
        let mut blocks = vec![
            Block::Para(format!("Hi {name},")),
            Block::Para(format!(
                "Your booking is confirmed: {} with {}, {}.",
                b.service_name,
                b.staff_name,
                when(biz, b)
            )),
        ];
        if b.deposit_cents > 0 {
            blocks.push(Block::Para(format!(
                "Deposit: {} of {}.",
                money(b.deposit_cents, &b.currency),
                money(b.price_cents, &b.currency)
            )));
        }
        blocks.push(Block::Para(format!("You can move or cancel it free of charge until {} hours before; after that the deposit is kept. The attached calendar file adds it to your calendar.", biz.free_change_hours)));
        blocks.push(Block::Button {
            label: "View my booking",
            url: format!("{}/bookings/{}", s.public_url, b.id),
        });
        layout(
            &s.branding,
            &s.public_url,
            "booking_confirmed",
            &format!(
                "Booking confirmed: {} on {}",
                b.service_name,
                local_time(b.start_ms, biz.tz)
            ),
            &blocks,
            false,
        )
    }

    pub fn booking_rescheduled(
        s: &PortalSettings,
        biz: &Business,
        name: &str,
        b: &BookingView,
    ) -> Rendered {
        layout(
            &s.branding,
            &s.public_url,
            "booking_rescheduled",
            &format!(
                "Booking moved: {} on {}",
                b.service_name,
                local_time(b.start_ms, biz.tz)
            ),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(format!(
                    "Your booking for {} with {} is now on {}.",
                    b.service_name,
                    b.staff_name,
                    when(biz, b)
                )),
                Block::Para(
                    "The attached calendar file updates the event in your calendar.".into(),
                ),
                Block::Button {
                    label: "View my booking",
                    url: format!("{}/bookings/{}", s.public_url, b.id),
                },
            ],
            false,
        )
    }

    pub fn booking_cancelled(
        s: &PortalSettings,
        biz: &Business,
        name: &str,
        b: &BookingView,
        deposit_outcome: &str,
    ) -> Rendered {
        let deposit = match deposit_outcome {
            "refund" => format!(
                "Your deposit of {} will be refunded to your card.",
                money(b.deposit_cents, &b.currency)
            ),
            "keep" => format!(
                "As the cancellation came less than {} hours before, the deposit of {} is kept, as the booking policy says.",
                biz.free_change_hours,
                money(b.deposit_cents, &b.currency)
            ),
            _ => "No deposit was paid, so nothing is charged.".into(),
        };
        layout(
            &s.branding,
            &s.public_url,
            "booking_cancelled",
            &format!(
                "Booking cancelled: {} on {}",
                b.service_name,
                local_time(b.start_ms, biz.tz)
            ),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(format!(
                    "Your booking for {} with {} on {} is cancelled.",
                    b.service_name,
                    b.staff_name,
                    when(biz, b)
                )),
                Block::Para(deposit),
                Block::Button {
                    label: "Book another time",
                    url: format!("{}/book", s.public_url),
                },
            ],
            false,
        )
    }

    pub fn booking_reminder(
        s: &PortalSettings,
        biz: &Business,
        name: &str,
        b: &BookingView,
    ) -> Rendered {
        layout(
            &s.branding,
            &s.public_url,
            "booking_reminder",
            &format!(
                "Reminder: {} on {}",
                b.service_name,
                local_time(b.start_ms, biz.tz)
            ),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(format!(
                    "A reminder of your booking: {} with {}, {}.",
                    b.service_name,
                    b.staff_name,
                    when(biz, b)
                )),
                Block::Button {
                    label: "View or change my booking",
                    url: format!("{}/bookings/{}", s.public_url, b.id),
                },
            ],
            false,
        )
    }

    /// The receipt for a paid deposit: amount, the VAT it includes, and the net.
    pub fn deposit_receipt(
        s: &PortalSettings,
        biz: &Business,
        name: &str,
        b: &BookingView,
        p: &crate::records::Payment,
    ) -> Rendered {
        let number = p
            .receipt_number
            .clone()
            .unwrap_or_else(|| format!("D{:06}", p.id));
        let paid = p.paid_at.map(|t| local_time(t, biz.tz)).unwrap_or_default();
        let vat_line = if p.vat_rate_bp > 0 {
            format!(
                "VAT included ({}.{:02} %): {}. Net of VAT: {}.",
                p.vat_rate_bp / 100,
                p.vat_rate_bp % 100,
                money(p.vat_cents, &p.currency),
                money(p.amount_cents - p.vat_cents, &p.currency)
            )
        } else {
            "No VAT is charged.".into()
        };
        layout(
            &s.branding,
            &s.public_url,
            "deposit_receipt",
            &format!("Receipt {number}: deposit for {}", b.service_name),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(format!(
                    "Thank you: we received your deposit of {} on {paid} for {} with {}, {}.",
                    money(p.amount_cents, &p.currency),
                    b.service_name,
                    b.staff_name,
                    when(biz, b)
                )),
                Block::Para(format!(
                    "Receipt number: {number}. Amount paid: {}. {vat_line}",
                    money(p.amount_cents, &p.currency)
                )),
                Block::Button {
                    label: "View the receipt",
                    url: format!("{}/payments/{}", s.public_url, p.id),
                },
            ],
            false,
        )
    }

    /// A link to pay a deposit that was due at the visit.
    pub fn payment_link(
        s: &PortalSettings,
        biz: &Business,
        name: &str,
        b: &BookingView,
        url: &str,
    ) -> Rendered {
        layout(
            &s.branding,
            &s.public_url,
            "payment_link",
            &format!("Pay your deposit for {}", b.service_name),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(format!(
                    "Your booking for {} with {} on {} is confirmed. The deposit of {} can be paid online now (or at your visit).",
                    b.service_name,
                    b.staff_name,
                    when(biz, b),
                    money(b.deposit_cents, &b.currency)
                )),
                Block::Button {
                    label: "Pay the deposit",
                    url: url.to_owned(),
                },
            ],
            false,
        )
    }

    /// A refund was made to the customer's card.
    pub fn refund_issued(
        s: &PortalSettings,
        biz: &Business,
        name: &str,
        b: &BookingView,
        amount_cents: i64,
        reason: &str,
    ) -> Rendered {
        layout(
            &s.branding,
            &s.public_url,
            "refund_issued",
            &format!("Refund of {}", money(amount_cents, &b.currency)),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(format!(
                    "We refunded {} to your card for {} on {}. Reason: {reason}",
                    money(amount_cents, &b.currency),
                    b.service_name,
                    when(biz, b)
                )),
                Block::Para(
                    "Refunds usually show on your statement within 5 to 10 working days.".into(),
                ),
            ],
            false,
        )
    }

    /// A payment arrived that cannot be kept (late, duplicate, or for a cancelled booking).
    pub fn late_payment_refunded(
        s: &PortalSettings,
        biz: &Business,
        name: &str,
        b: &BookingView,
        amount_cents: i64,
        why: &str,
    ) -> Rendered {
        layout(
            &s.branding,
            &s.public_url,
            "late_payment_refunded",
            &format!(
                "Your payment of {} is being refunded",
                money(amount_cents, &b.currency)
            ),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(format!(
                    "We received {} for {} on {}, but it was {why}. We're refunding all of it to your card; you don't need to do anything.",
                    money(amount_cents, &b.currency),
                    b.service_name,
                    when(biz, b)
                )),
                Block::Button {
                    label: "Book another time",
                    url: format!("{}/book", s.public_url),
                },
            ],
            false,
        )
    }

    /// Staff shared a document with the customer. The message names it but never attaches it:
    /// the customer downloads it after signing in.
    pub fn document_shared(s: &PortalSettings, name: &str, document: &str) -> Rendered {
        layout(
            &s.branding,
            &s.public_url,
            "document_shared",
            &format!("{} shared a document with you", s.branding.business_name),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(format!(
                    "We shared a document with you: {document}. Sign in to download it."
                )),
                Block::Button {
                    label: "View my documents",
                    url: format!("{}/documents", s.public_url),
                },
            ],
            false,
        )
    }

    /// Staff asked the customer for a document.
    pub fn document_requested(s: &PortalSettings, name: &str, what: &str, due: &str) -> Rendered {
        layout(
            &s.branding,
            &s.public_url,
            "document_requested",
            &format!("{} asks you for a document", s.branding.business_name),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(format!("Please send us: {what}. We need it by {due}.")),
                Block::Para(
                    "You can upload it securely from your documents page; please don't send it by email."
                        .into(),
                ),
                Block::Button {
                    label: "Upload the document",
                    url: format!("{}/documents", s.public_url),
                },
            ],
            false,
        )
    }

    /// The reminder before a requested document is due.
    pub fn document_request_reminder(
        s: &PortalSettings,
        name: &str,
        what: &str,
        due: &str,
    ) -> Rendered {
        layout(
            &s.branding,
            &s.public_url,
            "document_request_reminder",
            &format!("Reminder: we still need a document by {due}"),
            &[
                Block::Para(format!("Hi {name},")),
                Block::Para(format!(
                    "A reminder that we still need: {what}. It is due by {due}."
                )),
                Block::Button {
                    label: "Upload the document",
                    url: format!("{}/documents", s.public_url),
                },
                Block::Para(
                    "If you already sent it another way, let us know and ignore this message."
                        .into(),
                ),
            ],
            false,
        )
    }

    pub fn test_message(s: &PortalSettings) -> Rendered {
        layout(
            &s.branding,
            &s.public_url,
            "test_message",
            &format!("Test message from {}", s.branding.business_name),
            &[
                Block::Para(
                    "This is a test message sent by an admin from the integration health area."
                        .into(),
                ),
                Block::Para("If you can read it, the portal's email delivery works.".into()),
            ],
            false,
        )
    }

    pub fn admin_digest(s: &PortalSettings, lines: &[String]) -> Rendered {
        let mut blocks = vec![Block::Para(
            "These integration problems need an admin:".into(),
        )];
        blocks.extend(lines.iter().map(|l| Block::Para(format!("- {l}"))));
        blocks.push(Block::Button {
            label: "Open integration health",
            url: format!("{}/admin/integrations", s.public_url),
        });
        layout(
            &s.branding,
            &s.public_url,
            "admin_digest",
            &format!(
                "[{}] Integration problems need attention",
                s.branding.business_name
            ),
            &blocks,
            false,
        )
    }
}

/// Puts `message` for `to` in the outbox on `conn` (the caller's transaction) with an `email.send`
/// job. `key` makes it idempotent: the same key never sends twice. Returns the email's id, or
/// `None` when this key was already queued.
#[tracing::instrument(skip_all, err)]
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    settings: &PortalSettings,
    user_id: Option<i64>,
    to: &str,
    message: Rendered,
    key: &str,
) -> Result<Option<i64>, DbErr> {
    let idempotency_key = format!("email:{key}");
    // Claim the key first, so a duplicate adds no email row.
    let exists = db::query_one(
        conn,
        "SELECT id FROM jobs WHERE idempotency_key = ?",
        vec![idempotency_key.clone().into()],
    )
    .await?;
    if exists.is_some() {
        return Ok(None);
    }
    let domain = settings
        .mail_from
        .rsplit('@')
        .next()
        .unwrap_or("stoep.local")
        .trim_end_matches('>')
        .to_owned();
    let message_id = format!(
        "<{}.{}@{}>",
        now_ms(),
        crate::tokens::new_token().0.get(..16).unwrap_or("x"),
        domain
    );
    let (att_name, att_type, att_body) = match message.attachment {
        Some(a) => (Some(a.filename), Some(a.content_type), Some(a.body)),
        None => (None, None, None),
    };
    let row = db::query_one(
        conn,
        "INSERT INTO emails (user_id, to_address, template, subject, body_text, body_html, attachment_name, attachment_type, attachment_body, \
         redact_after_send, message_id, job_key, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?) RETURNING id",
        vec![
            user_id.into(), to.into(), message.template.into(), message.subject.into(), message.text.into(), message.html.into(),
            att_name.into(), att_type.into(), att_body.into(), message.secret.into(), message_id.into(), idempotency_key.clone().into(), now_ms().into(),
        ],
    )
    .await?;
    let Some(row) = row else { return Ok(None) };
    let email_id: i64 = col(&row, "id")?;
    let subject = match user_id {
        Some(u) => Subject::new("customer", u),
        None => Subject::new("email", email_id),
    };
    ledger::enqueue(
        conn,
        NewJob::of(
            &crate::jobs::SendEmail { email_id },
            subject,
            idempotency_key,
        ),
    )
    .await?;
    Ok(Some(email_id))
}

/// The outbox as admins see it (newest 200, recipients masked), with each message's job.
#[tracing::instrument(skip_all, err)]
pub async fn outbox(db: &sea_orm::DatabaseConnection) -> Result<Vec<model::EmailRow>, DbErr> {
    use model::{EmailRow, mask_email};
    let rows = db::query(
        db,
        "SELECT e.id AS id, e.to_address AS to_address, e.template AS template, e.subject AS subject, e.status AS estatus, \
         e.smtp_reply AS smtp_reply, e.created_at AS created_at, j.id AS job_id, j.status AS jstatus, j.attempts AS attempts, j.last_error AS last_error \
         FROM emails e LEFT JOIN jobs j ON j.idempotency_key = e.job_key \
         ORDER BY e.created_at DESC, e.id DESC LIMIT 200",
        vec![],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let estatus: String = col(r, "estatus")?;
            let jstatus: Option<String> = col(r, "jstatus")?;
            let last_error: Option<String> = col(r, "last_error")?;
            let status = match (estatus.as_str(), jstatus.as_deref()) {
                ("sent", _) => "sent",
                (_, Some("manual_review")) => "in review",
                (_, Some("cancelled")) | ("failed", _) => "failed",
                (_, Some("queued" | "running")) if last_error.is_some() => "retrying",
                _ => "queued",
            };
            let reply: Option<String> = col(r, "smtp_reply")?;
            Ok(EmailRow {
                id: col(r, "id")?,
                to_masked: mask_email(&col::<String>(r, "to_address")?),
                template: col(r, "template")?,
                subject: col(r, "subject")?,
                status: status.into(),
                attempts: col::<Option<i32>>(r, "attempts")?.unwrap_or(0),
                smtp_reply: reply.or(last_error),
                created_at_ms: col(r, "created_at")?,
                job_id: col(r, "job_id")?,
            })
        })
        .collect()
}

/// Sends an email again as a new message with the same content, to the address the person has
/// now (so an admin can fix a bad address, then resend). Audited.
#[tracing::instrument(skip_all)]
pub async fn resend(
    db: &sea_orm::DatabaseConnection,
    settings: &PortalSettings,
    actor: i64,
    id: i64,
) -> Result<(), model::error::AppError> {
    use model::error::AppError;
    let txn = db::begin_write(db).await?;
    let row = db::query_one(
        &txn,
        "SELECT e.user_id AS user_id, COALESCE(u.email, e.to_address) AS to_address, e.template AS template, e.subject AS subject, \
         e.body_text AS body_text, e.body_html AS body_html, e.redact_after_send AS secret, e.status AS status \
         FROM emails e LEFT JOIN users u ON u.id = e.user_id WHERE e.id = ?",
        vec![id.into()],
    )
    .await?
    .ok_or(AppError::NotFound)?;
    let secret: bool = col(&row, "secret")?;
    let status: String = col(&row, "status")?;
    if secret && status == "sent" {
        return Err(AppError::Conflict("This message carried a one-time link that has been used up; ask the customer to request a new one.".into()));
    }
    let template: String = col(&row, "template")?;
    let message = Rendered {
        template,
        subject: col(&row, "subject")?,
        text: col(&row, "body_text")?,
        html: col(&row, "body_html")?,
        attachment: None,
        secret,
    };
    let to: String = col(&row, "to_address")?;
    let user_id: Option<i64> = col(&row, "user_id")?;
    enqueue(
        &txn,
        settings,
        user_id,
        &to,
        message,
        &format!("resend:{id}:{}", db::now_ms()),
    )
    .await?;
    crate::audit::record(
        &txn,
        Some(actor),
        "email.resend",
        "email",
        &id.to_string(),
        "resent by an admin",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Queues a harmless test message to `me`. Audited.
#[tracing::instrument(skip_all)]
pub async fn send_test(
    db: &sea_orm::DatabaseConnection,
    settings: &PortalSettings,
    me: &crate::records::UserRecord,
) -> Result<(), model::error::AppError> {
    let txn = db::begin_write(db).await?;
    enqueue(
        &txn,
        settings,
        Some(me.id),
        &me.email,
        templates::test_message(settings),
        &format!("test:{}:{}", me.id, db::now_ms()),
    )
    .await?;
    crate::audit::record(
        &txn,
        Some(me.id),
        "email.test",
        "user",
        &me.id.to_string(),
        "test email queued",
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// One of a person's recent messages, as their account page lists them.
#[derive(Clone, Debug, sea_orm::FromQueryResult)]
pub struct RecentMessage {
    pub subject: String,
    pub body_text: String,
    pub status: String,
    pub redact_after_send: bool,
    pub created_at: i64,
}

/// A person's twenty newest messages.
#[tracing::instrument(skip_all, err)]
pub async fn recent_for<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
) -> Result<Vec<RecentMessage>, DbErr> {
    use sea_orm::FromQueryResult;
    db::query(
        conn,
        "SELECT subject, body_text, status, redact_after_send, created_at FROM emails WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT 20",
        vec![user_id.into()],
    )
    .await?
    .iter()
    .map(|r| RecentMessage::from_query_result(r, ""))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PortalSettings {
        PortalSettings {
            public_url: "https://portal.example.com".into(),
            branding: Branding {
                business_name: "Kloof <Physio> & Co".into(),
                primary_colour: "#123456".into(),
                logo_url: Some("/logo.png".into()),
            },
            mail_from: "Kloof <noreply@kloof.example>".into(),
            privacy_notice_version: "2026-11".into(),
            privacy_notice: None,
            demo: false,
            checkout_origin: String::new(),
            storage_description: None,
            map: Default::default(),
            documents: Default::default(),
        }
    }

    #[test]
    fn user_text_is_escaped_and_links_are_absolute() {
        let r = templates::verify_email(&settings(), "<script>alert(1)</script>", "tok123");
        assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!r.html.contains("<script>"));
        assert!(r.html.contains("Kloof &lt;Physio&gt; &amp; Co"));
        assert!(
            r.html
                .contains("https://portal.example.com/verify-email?token=tok123")
        );
        assert!(r.html.contains("https://portal.example.com/logo.png"));
        assert!(
            r.text
                .contains("https://portal.example.com/verify-email?token=tok123")
        );
        assert!(r.secret);
    }

    #[test]
    fn header_values_lose_line_breaks_and_length() {
        assert_eq!(
            header_safe("Hello\r\nBcc: victim@example.com", 200),
            "Hello Bcc: victim@example.com"
        );
        assert_eq!(header_safe(&"x".repeat(500), 200).len(), 200);
    }
}
