//! The server side of Stoep: configuration, startup, the worker and its handlers, the local
//! stand-ins, HTTP middleware and metrics. The `stoep` binary (`main.rs`) is a thin CLI over it.

pub mod archive;
pub mod catcher;
pub mod config;
pub mod crm;
pub mod crm_standin;
pub mod database;
pub mod demo;
pub mod documents;
pub mod feeds;
pub mod handlers;
pub mod http;
pub mod mailer;
pub mod metrics;
pub mod startup;
pub mod storage;
pub mod stripe;
pub mod stripe_standin;
pub mod telemetry;
pub mod webhooks;
pub mod worker;
