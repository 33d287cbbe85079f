//! One folder per integration: the client that implements the domain's port, the inbound webhook
//! route, the jobs that are specific to the provider, and its settings. Adding an integration is
//! adding a folder here (see ARCHITECTURE.md, "Adding an integration").

pub mod calendar_feeds;
pub mod crm;
pub mod smtp;
pub mod storage;
pub mod stripe;
