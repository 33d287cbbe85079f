#!/usr/bin/env bash
# Runs every test: the lint gate (fmt, clippy for the ssr and hydrate builds, cargo deny), Rust unit and integration tests on SQLite and PostgreSQL (127.0.0.1:5432),
# document storage on the local folder and on an S3-protocol server (moto, started here on
# 127.0.0.1:9100), real SMTP delivery to the local mail catcher, the worker processes, then the browser suite in
# end2end/ against a freshly started portal in Debian's Chromium. Installs what it needs first.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

START=$(date +%s)
ensure_rust_tools
ensure_nextest
ensure_s3_server
ensure_chromium
ensure_npm "$ROOT"
ensure_npm "$ROOT/end2end"

"$ROOT/scripts/lint.sh"

build_debug

say "PostgreSQL check"
if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    echo "PostgreSQL on 127.0.0.1:5432 is unreachable; under CI=true the PostgreSQL tests fail rather than skip."
  else
    echo "PostgreSQL on 127.0.0.1:5432 is unreachable; the PostgreSQL tests will be skipped (set CI=true to fail instead)."
  fi
fi
# Drop databases left behind by interrupted earlier runs: only those nobody is connected to and
# that are over an hour old, so a run going on beside this one (another clone) keeps its own.
psql -h 127.0.0.1 -U postgres -d test -Atc "SELECT d.datname FROM pg_database d WHERE d.datname LIKE 'stoep_t_%' \
  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname) \
  AND (pg_stat_file('base/' || d.oid || '/PG_VERSION')).modification < now() - interval '1 hour'" 2>/dev/null |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done

LOG_DIR="$(mktemp -d)"
say "S3 test server for the document tests"
start_s3_server "$LOG_DIR"

say "Rust tests (cargo nextest): unit and integration, SQLite and PostgreSQL, local folder and S3"
# Every test process logs to its own file here; scan_logs.sh reads them all at the end.
export STOEP_TEST_LOG_DIR="$LOG_DIR/tests"
cargo nextest run -p model -p domain -p app -p standins -p server -p migration -p slots -p guards --no-fail-fast 2>&1 | tee "$LOG_DIR/nextest.log"
stop_s3_server
"$ROOT/scripts/fuzz.sh" 10

"$ROOT/scripts/e2e.sh" "$LOG_DIR"
"$ROOT/scripts/scan_logs.sh" "$LOG_DIR"

say "All tests passed in $(( $(date +%s) - START )) s"
