//! The local CRM stand-in (being written).
