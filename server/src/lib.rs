//! The server side of Stoep: configuration, startup and wiring, HTTP middleware and metrics, the
//! portal's own HTTP routes (uploads and downloads, exports), the worker's job handlers, and one
//! folder per integration under [`integrations`]. The `stoep` binary (`main.rs`) is a thin CLI
//! over it. The domain itself is the `domain` crate; the stand-ins are the `standins` crate.

pub mod archive;
pub mod config;
pub mod embedded;
pub mod http;
pub mod integrations;
pub mod jobs;
pub mod metrics;
pub mod routes;
pub mod startup;
pub mod telemetry;
