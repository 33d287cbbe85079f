//! The controls of the embedded stand-ins, for the admin's stand-ins page and demos: their fault
//! switches and the local mail catcher's mailbox. Implemented by the `standins` crate and present
//! in the running portal only when at least one stand-in runs (no credentials configured). No
//! other port knows whether it talks to a stand-in.

use model::CaughtMail;

/// One running stand-in, as the admin page lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandinInfo {
    /// `smtp`, `stripe`, `crm`, ...
    pub key: String,
    /// "Stripe", "HubSpot", "mail catcher".
    pub name: String,
    /// Its current faults in words ("normal", "API down (503)").
    pub state: String,
    /// Its own page, where it shows everything it holds, when it has one.
    pub page_url: Option<String>,
    /// The faults it can be switched to: `(code, label)`.
    pub faults: Vec<(String, String)>,
}

pub trait StandinConsole: Send + Sync {
    /// The stand-ins that run in this process.
    fn list(&self) -> Vec<StandinInfo>;
    /// Switches stand-in `key` to `fault` (`normal` recovers). `Err` says why not, in words.
    fn set_fault(&self, key: &str, fault: &str) -> Result<(), String>;
    /// What the local mail catcher received, newest first (empty when it does not run).
    fn caught_mail(&self, limit: usize) -> futures_util::future::BoxFuture<'_, Vec<CaughtMail>>;
    /// One caught message as received (RFC 5322), when it exists.
    fn caught_raw(&self, id: &str) -> futures_util::future::BoxFuture<'_, Option<String>>;
}
