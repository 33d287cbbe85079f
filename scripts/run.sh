#!/usr/bin/env bash
# Runs the portal on http://127.0.0.1:3000 with the embedded defaults (SQLite in ./data, the local
# mail catcher) and demo data, after installing and building whatever is missing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_rust_tools
ensure_npm "$ROOT"
build_debug

export STOEP_DEMO="${STOEP_DEMO:-true}"
BIN="$CARGO_TARGET_DIR/debug/stoep"
DEMO_ADMIN="${STOEP_DEMO_ADMIN:-admin@demo.stoep.localhost}"

say "Preparing the demo admin"
"$BIN" admin create --email "$DEMO_ADMIN" --name "Demo Admin" | tee /tmp/stoep-demo-admin.txt
cat <<MSG

==> Stoep is starting on ${STOEP_PUBLIC_URL:-http://127.0.0.1:3000}
    Sign in as the demo admin: $DEMO_ADMIN with the one-time password printed above
    (a new one is printed at every start). Emails the portal sends appear at /admin/mail.
    Stop with Ctrl-C.

MSG
exec "$BIN" serve
