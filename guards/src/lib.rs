//! # Stoep's guards
//!
//! The checks that read bytes an outsider controls before anything else does: webhook
//! signatures ([`signature`], and WhatsApp's in [`whatsapp`]), the payment providers'
//! notifications and signatures ([`payfast`], [`paystack`]), what an uploaded file really is
//! ([`upload`]), the messaging providers' webhook bodies and message lengths ([`whatsapp`],
//! [`sms`]), and the calendars staff connect, as CalDAV servers return them ([`ical`]: RFC 5545
//! read defensively, recurrences expanded into busy intervals). Each is a pure function over a
//! byte slice or a string: no I/O, no clock (callers pass `now`), no async, no allocation
//! beyond the answer (and, for the JSON webhooks and calendars, the bounded parse of the body). That is what lets `fuzz/` (cargo-fuzz, libFuzzer) feed them
//! millions of arbitrary inputs: none may panic, and each fuzz target also asserts what the
//! function's documentation promises.
//!
//! The portal uses them through their old homes, which re-export them: `server::stripe` and
//! `server::crm` for the signatures, `app::ssr::documents` for the upload checks. New parsers of
//! untrusted input belong here, with a fuzz target beside the others.

pub mod ical;
mod json;
pub mod payfast;
pub mod paystack;
pub mod signature;
pub mod sms;
pub mod upload;
pub mod whatsapp;
