//! # Stoep's guards
//!
//! The checks that read bytes an outsider controls before anything else does: webhook
//! signatures ([`signature`]), the payment providers' notifications and signatures
//! ([`payfast`], [`paystack`]) and what an uploaded file really is ([`upload`]). Each is a pure
//! function over a byte slice or a string: no I/O, no clock (callers pass `now`), no async, no
//! allocation beyond the answer. That is what lets `fuzz/` (cargo-fuzz, libFuzzer) feed them
//! millions of arbitrary inputs: none may panic, and each fuzz target also asserts what the
//! function's documentation promises.
//!
//! The portal uses them through their old homes, which re-export them: `server::stripe` and
//! `server::crm` for the signatures, `app::ssr::documents` for the upload checks. New parsers of
//! untrusted input belong here, with a fuzz target beside the others.

pub mod payfast;
pub mod paystack;
pub mod signature;
pub mod upload;
