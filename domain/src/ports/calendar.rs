//! The calendar port: a member of staff's own calendar, both ways. Busy times come in (an
//! incremental sync with a token, falling back to a full window when the provider says the token
//! expired); confirmed bookings go out as events with idempotent keys. Google Calendar, Microsoft
//! 365 and CalDAV implement it in `server::integrations`. The read-only `.ics` feeds the portal
//! publishes are not this port: they are the portal serving its own data.

use async_trait::async_trait;

use super::CallError;

/// A time a calendar says the staff member is not free (UTC milliseconds, end exclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusyInterval {
    /// The provider's id of the event (or of the instance of a recurring event).
    pub event_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// A tentative event or an all-day event, which the staff member may choose not to count.
    pub tentative: bool,
    pub all_day: bool,
}

/// What one sync brought.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncBatch {
    /// `true` when this is a full window (the intervals replace all that were known), `false`
    /// for an incremental change set.
    pub full: bool,
    pub upserted: Vec<BusyInterval>,
    /// Event ids that are gone (deleted, cancelled, or turned free).
    pub removed: Vec<String>,
    /// Pass this to the next sync.
    pub next_token: Option<String>,
}

/// An event the portal writes for a booking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRequest {
    /// Stable per booking, so a retried create never makes a second event.
    pub idempotency_key: String,
    pub summary: String,
    pub description: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// IANA zone the times are shown in.
    pub time_zone: String,
    /// Ask the provider for a meeting link (Google Meet, Teams).
    pub online_meeting: bool,
}

/// An event as the provider holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRef {
    pub event_id: String,
    /// The provider's version marker (ETag, change key), to notice a change made on its side.
    pub version: Option<String>,
    pub meeting_url: Option<String>,
}

/// One connected calendar account of one member of staff.
#[async_trait]
pub trait CalendarConnection: Send + Sync {
    fn describe(&self) -> String;
    /// Busy times from `since_token` (incremental) or, without one or when the provider says it
    /// expired, for the whole window `[from_ms, to_ms)`.
    async fn sync(
        &self,
        calendar_id: &str,
        since_token: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<SyncBatch, CallError>;
    async fn create_event(
        &self,
        calendar_id: &str,
        event: &EventRequest,
    ) -> Result<EventRef, CallError>;
    async fn move_event(
        &self,
        calendar_id: &str,
        event_id: &str,
        event: &EventRequest,
    ) -> Result<EventRef, CallError>;
    /// Removes an event; one already gone counts as removed.
    async fn delete_event(&self, calendar_id: &str, event_id: &str) -> Result<(), CallError>;
    /// The event as it is now, `None` when it was deleted on the calendar side.
    async fn get_event(
        &self,
        calendar_id: &str,
        event_id: &str,
    ) -> Result<Option<EventRef>, CallError>;
    async fn test_connection(&self) -> Result<String, CallError>;
}
