//! One module per area of the portal.

pub mod account;
pub mod admin;
pub mod auth;
pub mod booking;
pub mod dashboard;
pub mod documents;
pub mod home;
pub mod map;
pub mod not_found;
pub mod payments;
pub mod security;
pub mod setup;
