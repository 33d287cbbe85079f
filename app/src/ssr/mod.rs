//! The Leptos-bound server layer: the state in context and who is calling. Everything else the
//! server does lives in the `domain` crate; server functions parse, authorise, call the domain and
//! map the result. Compiled only with the `ssr` feature.

pub mod guard;
pub mod state;

pub use state::{AppState, state};
