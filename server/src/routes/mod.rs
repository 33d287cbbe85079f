//! The portal's own HTTP routes that are not Leptos pages or server functions: document uploads
//! and downloads (they stream) and the exports (CSV, the map as Markdown, the customer's
//! archive).

pub mod documents;
pub mod exports;
