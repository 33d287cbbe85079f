//! Tests of the local CRM stand-in (being written).
