//! Database helpers shared by every module: time, transactions, raw statements for both backends.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, QueryResult,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, Value,
};

/// Milliseconds since the Unix epoch, UTC: the portal's one representation of an instant.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Starts a transaction that will write. On SQLite it begins `IMMEDIATE`, taking the write lock at
/// once, so a read-then-write transaction cannot fail half-way with `SQLITE_BUSY` (SQLite's single
/// writer serialises such transactions; PostgreSQL uses row locks and constraints instead).
#[tracing::instrument(skip_all, err)]
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Builds a statement from SQL written with `?` placeholders, numbering them `$1, $2, ...` for
/// PostgreSQL. Placeholders inside single-quoted literals are left alone.
pub fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Postgres {
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        let mut in_literal = false;
        for ch in sql.chars() {
            match ch {
                '\'' => {
                    in_literal = !in_literal;
                    out.push(ch);
                }
                '?' if !in_literal => {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                }
                _ => out.push(ch),
            }
        }
        out
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Runs a query written with `?` placeholders and returns every row.
#[tracing::instrument(skip_all, err)]
pub async fn query<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>, DbErr> {
    conn.query_all_raw(stmt(conn.get_database_backend(), sql, values))
        .await
}

/// Runs a query written with `?` placeholders and returns the first row, if any.
#[tracing::instrument(skip_all, err)]
pub async fn query_one<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<Option<QueryResult>, DbErr> {
    conn.query_one_raw(stmt(conn.get_database_backend(), sql, values))
        .await
}

/// Runs a statement written with `?` placeholders and returns the number of rows it changed.
#[tracing::instrument(skip_all, err)]
pub async fn execute<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<u64, DbErr> {
    Ok(conn
        .execute_raw(stmt(conn.get_database_backend(), sql, values))
        .await?
        .rows_affected())
}

/// Reads a column by name.
pub fn col<T: sea_orm::TryGetable>(row: &QueryResult, name: &str) -> Result<T, DbErr> {
    row.try_get("", name)
}

/// True when a database error is a unique-constraint violation.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_outside_literals() {
        let s = stmt(
            DbBackend::Postgres,
            "SELECT '?' , ? , ?",
            vec![1.into(), 2.into()],
        );
        assert_eq!(s.sql, "SELECT '?' , $1 , $2");
        let s = stmt(DbBackend::Sqlite, "SELECT ?", vec![1.into()]);
        assert_eq!(s.sql, "SELECT ?");
    }
}
