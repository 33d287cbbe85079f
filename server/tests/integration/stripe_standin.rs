//! Tests of the local Stripe stand-in through async-stripe (being written).
