//! The local Stripe stand-in (being written).
