//! Small, panic-free readers over a parsed `serde_json::Value`, shared by the webhook parsers.
//! Provider JSON is untrusted: every field may be missing, of another type, or huge, so each
//! reader answers `None` rather than guess, and the parsers decide what a missing field means.

use serde_json::Value;

/// The longest id kept (bytes). Provider ids are short (a wamid is at most 128 characters, a
/// BulkSMS id about 20 digits); a longer one is refused, not cut, since a cut id names nothing.
pub(crate) const MAX_ID_BYTES: usize = 256;

/// Parses `body` as JSON when it is at most `max_bytes` long. serde_json's own recursion limit
/// (128 levels) keeps deeply nested input from exhausting the stack.
pub(crate) fn parse_bounded(body: &[u8], max_bytes: usize) -> Result<Value, ParseFailure> {
    if body.len() > max_bytes {
        return Err(ParseFailure::TooLarge);
    }
    serde_json::from_slice(body).map_err(|_| ParseFailure::NotJson)
}

/// Why [`parse_bounded`] refused.
pub(crate) enum ParseFailure {
    TooLarge,
    NotJson,
}

/// A string field, or an integer written as a number (some fields are strings in one payload
/// and numbers in another); floats, booleans, objects and arrays are not text.
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// Like [`text`], for ids: non-empty and at most [`MAX_ID_BYTES`].
pub(crate) fn id(v: Option<&Value>) -> Option<String> {
    text(v).filter(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES)
}

/// Unix seconds written as a string (Meta's way) or as a number.
pub(crate) fn unix_secs(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// An integer field (a number, or a string of digits).
pub(crate) fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The items of an array field; anything else is no items.
pub(crate) fn items(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(a)) => a,
        _ => &[],
    }
}
