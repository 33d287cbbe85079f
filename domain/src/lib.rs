//! Stoep's domain: everything the portal does on the server, without Leptos. Accounts and
//! sessions, bookings, payments, documents, CRM sync, email composition and the outbox, privacy,
//! the integration ledger and its worker, and the integration map's facts. It talks to other
//! systems only through [`ports`]; the concrete clients live in `server::integrations`.
//!
//! Module dependencies point one way: [`records`] (shared records) and the utilities ([`db`],
//! [`tokens`], [`settings`]) at the bottom; [`email`] above them; [`booking`], [`documents`] and
//! [`crm`] above that; [`payments`] on top (it confirms and cancels bookings). No module imports
//! one that imports it back.

pub mod account;
pub mod audit;

pub mod auth;
pub mod booking;
pub mod catalog;
pub mod crm;
pub mod customers;
pub mod database;
pub mod db;
pub mod demo;
pub mod documents;
pub mod email;
pub mod jobs;
pub mod ledger;
pub mod map;
pub mod payments;
pub mod people;
pub mod ports;
pub mod privacy;
pub mod records;
pub mod second_factor;
pub mod sessions;
pub mod settings;
pub mod tokens;
pub mod totp;
pub mod worker;

pub use settings::{Portal, PortalSettings};
