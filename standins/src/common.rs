//! Plumbing every stand-in shares: a state file that survives restarts (written atomically), a
//! mutex that shrugs off poisoning, the clock, HTML escaping and the page shell of the
//! `/_standin` pages.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Locks `m`; a panic elsewhere while it was held does not make the stand-in unusable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    (now_ms() / 1000) as i64
}

/// Reads a stand-in's state file. One that cannot be read is an error (a permissions problem
/// should not silently lose demo data); one that cannot be parsed is logged and replaced by the
/// default state; a missing one is the default state.
pub async fn load_state<T: DeserializeOwned + Default>(
    path: &Path,
    what: &str,
) -> std::io::Result<T> {
    match tokio::fs::read(path).await {
        Ok(bytes) => match serde_json::from_slice::<T>(&bytes) {
            Ok(state) => Ok(state),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable {what} stand-in state file");
                Ok(T::default())
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Writes the state to a temporary file and renames it over the old one, so a crash never
/// leaves half a file. A failure is logged: the stand-in keeps serving from memory.
pub fn save_state<T: Serialize>(path: &Path, state: &T, what: &str) {
    let result = serde_json::to_vec_pretty(state)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not save the {what} stand-in state");
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page shell of the stand-ins' own pages (hosted payment pages, `/_standin`).
pub fn page(title: &str, body: &str, wide: bool) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; color: #1a1a1a; background: #f6f6f4; margin: 0; }}
main {{ max-width: 34rem; margin: 2rem auto; background: #fff; padding: 1.5rem 2rem;
       border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.15); }}
main.wide {{ max-width: 70rem; }}
h1 {{ font-size: 1.5rem; }}
.note {{ color: #444; font-size: .9rem; }}
.alert {{ background: #fdecea; color: #7a1010; border: 1px solid #b3261e; padding: .75rem;
         border-radius: 4px; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; font-size: .9rem; }}
th, td {{ text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid #ddd; }}
label {{ display: block; font-weight: 600; margin: 1rem 0 .25rem; }}
input {{ font: inherit; padding: .5rem; width: 100%; box-sizing: border-box; border: 1px solid #555;
        border-radius: 4px; }}
button {{ font: inherit; display: block; width: 100%; margin-top: .75rem; padding: .7rem;
         border-radius: 4px; border: 2px solid #14532d; cursor: pointer; }}
button.primary {{ background: #14532d; color: #fff; }}
button.secondary {{ background: #fff; color: #14532d; }}
button:focus-visible, a:focus-visible {{ outline: 3px solid #1d4ed8; outline-offset: 2px; }}
a {{ color: #1d4ed8; }}
</style>
</head>
<body>
<main{wide}>
{body}
</main>
</body>
</html>
"#,
        title = esc(title),
        wide = if wide { " class=\"wide\"" } else { "" },
    )
}
