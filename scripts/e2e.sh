#!/usr/bin/env bash
# The browser suite alone: starts a fresh portal on 127.0.0.1:3100 (its own data folder, demo
# settings, the admin with a known TOTP secret), runs Playwright in end2end/ with Debian's
# Chromium, stops the portal, and checks its log holds none of the test secrets.
# Expects the site and binary to be built (scripts/test.sh does that). Usage: e2e.sh [log dir]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOG_DIR="${1:-$(mktemp -d)}"
say "Browser tests (Playwright + Debian Chromium)"
E2E_DIR="$(mktemp -d)"
PORT="${STOEP_TEST_E2E_PORT:-3100}"
export STOEP_CONFIG=/dev/null
export STOEP_DATA_DIR="$E2E_DIR/data"
export STOEP_LISTEN="127.0.0.1:$PORT"
export STOEP_PUBLIC_URL="http://127.0.0.1:$PORT"
export STOEP_MAIL_CATCHER__LISTEN="127.0.0.1:$((PORT + 25))"
export STOEP_STRIPE__STANDIN_LISTEN="127.0.0.1:$((PORT + 26))"
export STOEP_CRM__STANDIN_LISTEN="127.0.0.1:$((PORT + 27))"
export STOEP_SITE_ROOT="$ROOT/target/site"
export STOEP_DEMO=true
export STOEP_TEST_E2E_ADMIN_EMAIL="e2e-admin@example.com"
export STOEP_TEST_E2E_ADMIN_PASSWORD="e2e admin passphrase for the browser suite 42"
export STOEP_TEST_E2E_ADMIN_TOTP="KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TF"
export STOEP_TEST_E2E_BASE_URL="$STOEP_PUBLIC_URL"
BIN="$CARGO_TARGET_DIR/debug/stoep"
"$BIN" admin create --email "$STOEP_TEST_E2E_ADMIN_EMAIL" --name "E2E Admin" \
  --password-env STOEP_TEST_E2E_ADMIN_PASSWORD --totp-secret-env STOEP_TEST_E2E_ADMIN_TOTP >/dev/null
"$BIN" serve >"$LOG_DIR/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
if ! wait_for "$STOEP_PUBLIC_URL/readyz" 60; then
  echo "The portal did not become ready; its log:"; cat "$LOG_DIR/server.log"; exit 1
fi
E2E_STATUS=0
(cd "$ROOT/end2end" && npx playwright test) || E2E_STATUS=$?
kill -TERM $SERVER_PID 2>/dev/null || true
wait $SERVER_PID 2>/dev/null || true
trap - EXIT
if [ "$E2E_STATUS" != 0 ]; then
  echo "Browser tests failed; the portal's log follows."; tail -n 200 "$LOG_DIR/server.log"; exit "$E2E_STATUS"
fi

say "Scanning the portal's log for test secrets"
for secret in "copper kettle under the stoep" "$STOEP_TEST_E2E_ADMIN_PASSWORD" "$STOEP_TEST_E2E_ADMIN_TOTP" "sipho's long walk"; do
  if grep -qF "$secret" "$LOG_DIR/server.log"; then
    echo "A test secret appears in the server log: ${secret:0:6}..."; exit 1
  fi
done
echo "No test secret in the logs."
