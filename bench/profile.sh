#!/usr/bin/env bash
# Profiles the portal under load: starts a release `stoep serve` with demo data (SQLite), signs in
# a customer and an admin (bench/src/page_setup.rs), runs wrk against one page while `perf record`
# samples the server, and prints the hottest functions (self time) and, grouped, the share of
# time spent in each area (database, rendering, sessions, allocation, ...).
# Usage: bench/profile.sh [page: book|bookings|admin] [seconds]   (default: book 15)
# Needs perf (Debian's linux-perf) and wrk; run bench/run.sh once first to build the binaries.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

PAGE="${1:-book}"
SECS="${2:-15}"
BIN="$CARGO_TARGET_DIR/release"
PORT=3320
WORK="$(mktemp -d -t stoep-profile.XXXXXX)"
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || sudo apt-get install -y -qq wrk; }
[ -x "$BIN/stoep" ] && [ -x "$BIN/page_setup" ] || cargo build --release -p server -p stoep-bench

export STOEP_CONFIG=/dev/null STOEP_LISTEN="127.0.0.1:$PORT" STOEP_PUBLIC_URL="http://127.0.0.1:$PORT"
export STOEP_SITE_ROOT="$WORK/site" STOEP_LOG_LEVEL=warn STOEP_DEMO=true STOEP_DATA_DIR="$WORK/data"
export STOEP_MAIL_CATCHER__LISTEN="127.0.0.1:$((PORT + 1))" STOEP_STRIPE__STANDIN_LISTEN="127.0.0.1:$((PORT + 2))"
export STOEP_CRM__STANDIN_LISTEN="127.0.0.1:$((PORT + 3))"
mkdir -p "$STOEP_SITE_ROOT" "$STOEP_DATA_DIR"
"$BIN/stoep" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
wait_for "http://127.0.0.1:$PORT/readyz" 60
SETUP=$("$BIN/page_setup" "http://127.0.0.1:$PORT")
case "$PAGE" in
  book) URL="/book/$(sed -n 's/^service_id=//p' <<<"$SETUP")"; COOKIE="" ;;
  bookings) URL="/bookings"; COOKIE="$(sed -n 's/^customer_cookie=//p' <<<"$SETUP")" ;;
  admin) URL="/admin/integrations"; COOKIE="$(sed -n 's/^admin_cookie=//p' <<<"$SETUP")" ;;
  *) echo "page: book, bookings or admin"; exit 2 ;;
esac
say "Profiling $URL for $SECS s (wrk, 16 connections)"
wrk -t1 -c16 -d"$((SECS + 2))s" ${COOKIE:+-H "Cookie: $COOKIE"} "http://127.0.0.1:$PORT$URL" >"$WORK/wrk.txt" &
WRK=$!
sleep 1
perf record -F 499 -p "$SERVER" -o "$WORK/perf.data" -- sleep "$SECS" 2>/dev/null
wait $WRK
grep -E "Requests/sec|Latency " "$WORK/wrk.txt"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' >"$WORK/top.txt"
echo "Hottest functions (self time):"
head -30 "$WORK/top.txt" | sed -E "s/ {2,}/ /g" | cut -c1-150
echo
echo "By area (self time, % of samples):"
awk '
  { pct = $1; sub("%", "", pct); line = $0 }
  line ~ /sqlite3|sqlx|sea_orm/ { a["database (sqlite, sqlx, sea-orm)"] += pct; next }
  line ~ /tachys|leptos|reactive_graph|any_spawner|server_fn/ { a["rendering (leptos, tachys, reactive graph)"] += pct; next }
  line ~ /tower_sessions|sessions/ { a["sessions"] += pct; next }
  line ~ /malloc|free|realloc|memcpy|memmove|alloc::|_int_/ { a["allocation and copying"] += pct; next }
  line ~ /serde|json/ { a["serialization (serde)"] += pct; next }
  line ~ /slots::|chrono/ { a["slot engine and time zones"] += pct; next }
  line ~ /tokio|mio|epoll|futex|syscall|\[k\]/ { a["runtime and kernel"] += pct; next }
  line ~ /hyper|h2::|http::|axum|tower/ { a["HTTP stack"] += pct; next }
  { a["other"] += pct }
  END { for (k in a) printf "%6.1f%%  %s\n", a[k], k }' "$WORK/top.txt" | sort -rn
