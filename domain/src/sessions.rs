//! tower-sessions' store, kept in the portal's own database (SQLite or PostgreSQL), so sessions
//! survive a restart and are shared by every instance. The signed-in user's id is copied to its
//! own column so that all of a user's sessions can be ended at once (password change,
//! deactivation).

use async_trait::async_trait;
use sea_orm::DatabaseConnection;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::db::{self, col, now_ms};

/// The session key holding the signed-in user's id.
pub const USER_ID_KEY: &str = "uid";

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: DatabaseConnection,
}

impl DbSessionStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn backend_err(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn expiry_ms(record: &Record) -> i64 {
    (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64
}

fn user_id(record: &Record) -> Option<i64> {
    record.data.get(USER_ID_KEY).and_then(|v| v.as_i64())
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let data = serde_json::to_string(&record.data).map_err(backend_err)?;
            let result = db::execute(
                &self.db,
                "INSERT INTO sessions (id, user_id, data, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                vec![record.id.to_string().into(), user_id(record).into(), data.into(), expiry_ms(record).into()],
            )
            .await
            .map_err(backend_err)?;
            if result == 1 {
                return Ok(());
            }
            // An id collision (2^-128): draw another.
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data).map_err(backend_err)?;
        db::execute(
            &self.db,
            "INSERT INTO sessions (id, user_id, data, expires_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, data = excluded.data, expires_at = excluded.expires_at",
            vec![record.id.to_string().into(), user_id(record).into(), data.into(), expiry_ms(record).into()],
        )
        .await
        .map_err(backend_err)?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let row = db::query_one(
            &self.db,
            "SELECT data, expires_at FROM sessions WHERE id = ? AND expires_at > ?",
            vec![session_id.to_string().into(), now_ms().into()],
        )
        .await
        .map_err(backend_err)?;
        let Some(row) = row else { return Ok(None) };
        let data: String = col(&row, "data").map_err(backend_err)?;
        let expires: i64 = col(&row, "expires_at").map_err(backend_err)?;
        let expiry_date =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(expires) * 1_000_000)
                .map_err(backend_err)?;
        Ok(Some(Record {
            id: *session_id,
            data: serde_json::from_str(&data).map_err(backend_err)?,
            expiry_date,
        }))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        db::execute(
            &self.db,
            "DELETE FROM sessions WHERE id = ?",
            vec![session_id.to_string().into()],
        )
        .await
        .map_err(backend_err)?;
        Ok(())
    }
}

/// Ends every session of `user_id`, except `keep` (the caller's own, after a password change).
pub async fn end_user_sessions<C: sea_orm::ConnectionTrait>(
    conn: &C,
    user_id: i64,
    keep: Option<&str>,
) -> Result<u64, sea_orm::DbErr> {
    db::execute(
        conn,
        "DELETE FROM sessions WHERE user_id = ? AND id <> ?",
        vec![user_id.into(), keep.unwrap_or("").into()],
    )
    .await
}
