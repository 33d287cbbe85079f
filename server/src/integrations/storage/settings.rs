//! The `storage.*` settings: where documents go, the store's options, upload limits, presigning.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::error::{ConfigError, err};

/// Document storage. By default a folder under the data folder; otherwise any store object_store
/// reaches by URL, with its credentials from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `file:///abs/path`, `s3://bucket[/prefix]`, `gs://bucket`, `az://container` (and the other
    /// forms object_store parses, such as `https://<account>.blob.core.windows.net/<container>`).
    /// Default: `file://<data_dir>/documents`.
    pub url: Option<String>,
    /// Extra options for the store, by object_store's key names (`aws_endpoint`,
    /// `aws_allow_http`, `google_service_account`, ...). They override the environment's. Values
    /// are treated as secrets (never printed).
    #[serde(default, deserialize_with = "string_map")]
    pub options: std::collections::BTreeMap<String, SecretString>,
    /// The largest file accepted, in MB (MiB); larger uploads are cut off while streaming.
    pub max_upload_mb: u64,
    /// The file types accepted, comma-separated, from `pdf, jpeg, png, heic, docx, xlsx`.
    pub allowed_types: String,
    /// How long a presigned download URL is valid, in seconds, where the store can sign URLs
    /// (S3, GCS, Azure); 0 serves every download through the portal.
    pub presign_secs: u64,
}

/// Accepts strings, numbers and booleans (environment values are typed by `parse_env_value`).
fn string_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, SecretString>, D::Error> {
    let raw: std::collections::BTreeMap<String, figment::value::Value> =
        Deserialize::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let text = match v {
                figment::value::Value::String(_, s) => s,
                figment::value::Value::Bool(_, b) => b.to_string(),
                figment::value::Value::Num(_, n) => match (n.to_u128(), n.to_i128(), n.to_f64()) {
                    (Some(n), _, _) => n.to_string(),
                    (_, Some(n), _) => n.to_string(),
                    (_, _, Some(n)) => n.to_string(),
                    _ => String::new(),
                },
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "storage.options.{k} must be a single value"
                    )));
                }
            };
            Ok((k.to_ascii_lowercase(), SecretString::from(text)))
        })
        .collect()
}

#[derive(Serialize)]
pub(crate) struct StorageDefaults {
    pub(crate) max_upload_mb: u64,
    pub(crate) allowed_types: &'static str,
    pub(crate) presign_secs: u64,
}

impl StorageSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let s = self;
        if let Some(u) = &s.url {
            let url = url::Url::parse(u).map_err(|e| {
                err(
                    "storage.url (STOEP_STORAGE__URL)",
                    format!("not a URL: {e}"),
                )
            })?;
            object_store::ObjectStoreScheme::parse(&url).map_err(|_| {
                err(
                    "storage.url (STOEP_STORAGE__URL)",
                    "use file:///path, s3://bucket, gs://bucket or az://container",
                )
            })?;
            if url.scheme() == "file" && url.to_file_path().is_err() {
                return Err(err(
                    "storage.url (STOEP_STORAGE__URL)",
                    "a file URL needs an absolute path, like file:///srv/stoep/documents",
                ));
            }
        }
        if !(1..=2048).contains(&s.max_upload_mb) {
            return Err(err(
                "storage.max_upload_mb (STOEP_STORAGE__MAX_UPLOAD_MB)",
                "must be between 1 and 2048",
            ));
        }
        self.allowed_kinds()?;
        if s.presign_secs > 604_800 {
            return Err(err(
                "storage.presign_secs (STOEP_STORAGE__PRESIGN_SECS)",
                "must be at most 604800 (7 days, the longest a presigned S3 URL can live)",
            ));
        }
        Ok(())
    }

    /// The document types uploads may have, from `storage.allowed_types`.
    pub fn allowed_kinds(&self) -> Result<Vec<domain::documents::Kind>, ConfigError> {
        let mut kinds = Vec::new();
        for name in self
            .allowed_types
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let kind = domain::documents::Kind::parse(name).ok_or_else(|| {
                err(
                    "storage.allowed_types (STOEP_STORAGE__ALLOWED_TYPES)",
                    format!("{name:?} is not one of pdf, jpeg, png, heic, docx, xlsx"),
                )
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            return Err(err(
                "storage.allowed_types (STOEP_STORAGE__ALLOWED_TYPES)",
                "name at least one type",
            ));
        }
        Ok(kinds)
    }

    /// The storage URL, defaulting to the `documents` folder in the data folder.
    pub fn url(&self, data_dir: &std::path::Path) -> String {
        match &self.url {
            Some(u) => u.clone(),
            None => {
                let dir = data_dir.join("documents");
                let abs = std::path::absolute(&dir).unwrap_or(dir);
                url::Url::from_directory_path(&abs)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| format!("file://{}", abs.display()))
            }
        }
    }
}
