//! Server functions: the portal's API, called by pages (and by plain HTML forms when JavaScript
//! is off). Every function checks who is calling on the server; pages only hide what a role
//! cannot do.

pub mod account;
pub mod admin;
pub mod auth;
pub mod booking;
pub mod dashboard;
pub mod documents;
pub mod payments;
pub mod privacy;
pub mod security;
pub mod setup;
pub mod site;
