//! Integration tests: the real application against real SQLite and PostgreSQL databases and a
//! real SMTP server on 127.0.0.1. One binary, modules by area. Tests that touch the database run
//! once per backend (`db_test!`).

mod support;

mod access;
mod accounts;
mod bookings;
mod crm;
mod crm_standin;
mod documents;
mod email;
mod http;
mod ledger;
mod map;
mod payments;
mod privacy;
mod processes;
mod scaleout;
mod security;
mod stripe_standin;
