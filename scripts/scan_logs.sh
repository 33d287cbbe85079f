#!/usr/bin/env bash
# Scans every log written during the test run for the secrets the tests used or saw: test
# passwords, TOTP secrets, the stand-ins' API keys and webhook secrets, one-time link tokens
# and session ids (the Rust tests record each in <log dir>/tests/secrets/ as they meet it).
# Any hit fails the run. Usage: scan_logs.sh <log dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOG_DIR="$1"
say "Scanning the logs of the whole run for secrets"
NEEDLES="$LOG_DIR/needles.txt"
{
  cat "$LOG_DIR"/tests/secrets/*.txt 2>/dev/null || true
  # The browser suite's secrets (scripts/e2e.sh and end2end/tests).
  printf '%s\n' "e2e admin passphrase for the browser suite 42" "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TF" \
    "copper kettle under the stoep" "sipho's long walk"
} | awk 'length($0) >= 12' | sort -u >"$NEEDLES"

LOGS=()
while IFS= read -r -d '' f; do LOGS+=("$f"); done < <(find "$LOG_DIR/tests" -name '*.log' -print0 2>/dev/null)
[ -f "$LOG_DIR/server.log" ] && LOGS+=("$LOG_DIR/server.log")
LINES=0
for f in "${LOGS[@]}"; do LINES=$((LINES + $(wc -l <"$f"))); done
echo "${#LOGS[@]} log files, $LINES lines; $(wc -l <"$NEEDLES") distinct secrets to look for."
if [ "${#LOGS[@]}" -lt 50 ] || [ "$LINES" -lt 1000 ] || [ "$(wc -l <"$NEEDLES")" -lt 100 ]; then
  echo "Too little was captured for the scan to mean anything (is STOEP_TEST_LOG_DIR set for the tests?)."
  exit 1
fi
HITS="$(grep -rHoF -f "$NEEDLES" "${LOGS[@]}" | sort | uniq -c || true)"
if [ -n "$HITS" ]; then
  echo "Secrets found in the logs (file: first characters of the secret):"
  printf '%s\n' "$HITS" | sed -E 's/^( *[0-9]+ [^:]*:)(.{6}).*/\1 \2.../'
  exit 1
fi
echo "No secret in any log: zero hits."
