//! Local stand-ins for the services the portal connects to. Each speaks its service's real wire
//! protocol on 127.0.0.1, so the portal's production clients run unchanged against them:
//!
//! - [`stripe`]: the Stripe API the portal uses (Checkout Sessions, refunds, balance), a hosted
//!   payment page, and signed webhooks with Stripe's retry behaviour;
//! - [`payfast`]: PayFast's hosted payment page, its signed ITN with PayFast's retries, the ITN
//!   confirmation (`/eng/query/validate`) and its REST API (transaction query, refunds);
//! - [`paystack`]: Paystack's transaction API (initialize, verify, refunds, balance), a hosted
//!   checkout, and webhooks signed with `x-paystack-signature`, retried as Paystack does;
//! - [`hubspot`]: HubSpot's CRM v3 contacts API and its signed (v3) webhooks;
//! - [`mail`]: an SMTP server that keeps what it receives ([`mailbox`]);
//! - [`whatsapp`]: the WhatsApp Business Cloud API (Graph) sends, signed status and inbound
//!   webhooks, and a phone page to answer as the customer;
//! - [`bulksms`]: BulkSMS's JSON REST API, its delivery-report and received-message webhooks,
//!   and the same phone page ([`phone`]);
//! - [`google_calendar`]: Google's OAuth 2.0 (consent page, PKCE, refresh, revoke) and Calendar
//!   API v3 (calendar list, events with sync tokens, Meet links, watch channels);
//! - [`microsoft_graph`]: the Microsoft identity platform (PKCE, rotating refresh tokens) and
//!   Graph's calendars (calendarView delta, transactionId, Teams links, subscriptions with the
//!   validation handshake);
//! - [`xero`]: Xero's OAuth 2.0 identity endpoints, its connections and the Accounting API
//!   the portal pushes deposits through (contacts, tax invoices, payments, credit notes and
//!   refunds), with Xero's rate limits, idempotency keys, validation errors and signed
//!   webhooks.
//!
//! The two calendar stand-ins share their OAuth server ([`oauth`]) and time and fault helpers
//! ([`calendar_common`]); both let a tester add "outside" events so busy time appears.
//!
//! They share their plumbing ([`common`]: the state file, HTML pages, clocks; [`deliveries`]:
//! the signed-notification outbox PayFast, Paystack and Xero deliver through; [`outbox`], the one the
//! messaging stand-ins deliver through) and their fault switches ([`controls`]), which [`console`] exposes to the admin's stand-ins page through the
//! domain's `StandinConsole` port. The binary starts them only when no credentials for the real
//! service are configured; nothing in the portal's production types knows they exist.

pub mod bulksms;
pub mod calendar_common;
pub mod common;
pub mod console;
pub mod controls;
pub mod deliveries;
pub mod google_calendar;
pub mod hubspot;
pub mod mail;
pub mod mailbox;
pub mod microsoft_graph;
pub mod oauth;
pub mod outbox;
pub mod payfast;
pub mod paystack;
pub mod phone;
pub mod storage;
pub mod stripe;
pub mod whatsapp;
pub mod xero;
