#!/usr/bin/env bash
# Runs the benchmarks of issue #12 on release builds and writes bench/RESULTS.md.
#
# Every figure is compared with a baseline measured in the same run on the same machine (the
# machine is shared and noisy: compare ratios, not absolute numbers across runs):
#   pages        wrk against the portal vs. a bare axum server (bench/src/baseline.rs) returning a
#                static body of the same size: the ceiling
#   slot search  bench/src/slot_search.rs, vs. one pass over the same bookings
#   bookings     bench/src/booking_contention.rs, vs. one INSERT per request
#   jobs         bench/src/job_throughput.rs (PostgreSQL), vs. the worker's claim statement alone
#   memory/start VmRSS of `stoep serve`, start to /readyz 200, vs. the baseline server
#   wasm         target/site/pkg/stoep.wasm, raw and gzip -9 (BENCH_WASM=1 builds the release
#                site first, about 10 minutes, precompressed, and says which crates fill it)
#
# Uses ports 3300-3319 on 127.0.0.1, a temporary data folder, and fresh PostgreSQL databases
# (stoep_bench_<pid>_*) on 127.0.0.1:5432 that it drops at exit. Takes about 8 minutes once built.
# BENCH_SECONDS (default 8) sets the length of each wrk run.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

OUT="$ROOT/bench/RESULTS.md"
SECS="${BENCH_SECONDS:-8}"
BIN="$CARGO_TARGET_DIR/release"
PORT=3300
BASE_PORT=3310
PG_ADMIN="postgres://postgres@127.0.0.1:5432/test"
WORK="$(mktemp -d -t stoep-bench.XXXXXX)"
PIDS=()
PG_DBS=()
RUN_START=$(date +%s)

cleanup() {
  local p db
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for db in "${PG_DBS[@]}"; do
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null 2>&1; then
  say "Installing Debian's wrk"
  as_root apt-get install -y -qq wrk >/dev/null || { as_root apt-get update -qq && as_root apt-get install -y -qq wrk; }
fi

say "Building in release (stoep and the benchmark binaries)"
cargo build --release -p server -p stoep-bench

# The portal's settings; each phase sets STOEP_DATABASE_URL and STOEP_DATA_DIR.
export STOEP_CONFIG=/dev/null
export STOEP_LISTEN="127.0.0.1:$PORT"
export STOEP_PUBLIC_URL="http://127.0.0.1:$PORT"
export STOEP_SITE_ROOT="$WORK/site"
export STOEP_LOG_LEVEL=warn
export STOEP_DEMO=true
export STOEP_MAIL_CATCHER__LISTEN="127.0.0.1:$((PORT + 1))"
export STOEP_STRIPE__STANDIN_LISTEN="127.0.0.1:$((PORT + 2))"
export STOEP_CRM__STANDIN_LISTEN="127.0.0.1:$((PORT + 3))"
mkdir -p "$STOEP_SITE_ROOT"

use_database() { # name, backend (sqlite|postgres)
  export STOEP_DATA_DIR="$WORK/$1"
  mkdir -p "$STOEP_DATA_DIR"
  if [ "$2" = sqlite ]; then
    export STOEP_DATABASE_URL="sqlite://$STOEP_DATA_DIR/stoep.db?mode=rwc"
  else
    local db="stoep_bench_$$_$1"
    psql "$PG_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
    PG_DBS+=("$db")
    export STOEP_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
  fi
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# Starts a server in the background; sets STARTED_PID and READY_MS (launch to /readyz 200).
start_server() { # ready URL, command...
  local url="$1" t0 i=0
  shift
  t0=$(now_ms)
  "$@" >>"$WORK/server.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  until curl -fs -o /dev/null "$url"; do
    i=$((i + 1))
    if [ "$i" -gt 3000 ] || ! kill -0 "$STARTED_PID" 2>/dev/null; then
      echo "server did not become ready: $*" >&2
      tail -20 "$WORK/server.log" >&2
      exit 1
    fi
    sleep 0.01
  done
  READY_MS=$(($(now_ms) - t0))
}

stop_server() { # pid
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Runs wrk; prints "requests/s p50-ms p99-ms errors" (errors: non-2xx answers + socket errors).
load() { # url, connections, [cookie]
  local args=(-t2 -c"$2" -d"${SECS}s" --latency)
  [ -n "${3:-}" ] && args+=(-H "Cookie: $3")
  wrk "${args[@]}" "$1" | awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /Socket errors:/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, errors }'
}

# Samples a process's VmRSS every 0.2 s until the file $WORK/sampling disappears; prints the peak.
sample_rss() { # pid, output file
  local peak=0 now
  while [ -e "$WORK/sampling" ]; do
    now=$(awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0)
    [ "${now:-0}" -gt "$peak" ] && peak=$now
    sleep 0.2
  done
  awk -v k="$peak" 'BEGIN { printf "%.1f", k / 1024 }' >"$2"
}

PAGES="$WORK/pages.md"
MEMORY="$WORK/memory.md"
echo "| database | page (body bytes) | connections | requests/s | ceiling requests/s | ratio (target ≥ 0.5) | p50 | p99 | ceiling p50 | ceiling p99 |" >"$PAGES"
echo "|---|---|---|---|---|---|---|---|---|---|" >>"$PAGES"
echo "| process | database | resident memory at idle | peak under 64 connections | start to /readyz 200 | restart to /readyz 200 | targets |" >"$MEMORY"
echo "|---|---|---|---|---|---|---|" >>"$MEMORY"
BASELINE_READY=""
BASELINE_RSS=""

bench_pages() { # backend
  local backend="$1" portal idle_rss first_ready setup service_id customer_cookie admin_cookie
  use_database "pages" "$backend"
  say "Pages on $backend"
  start_server "http://127.0.0.1:$PORT/readyz" "$BIN/stoep" serve
  portal=$STARTED_PID
  first_ready=$READY_MS
  sleep 2
  idle_rss=$(rss_mb "$portal")
  setup=$("$BIN/page_setup" "http://127.0.0.1:$PORT")
  service_id=$(sed -n 's/^service_id=//p' <<<"$setup")
  customer_cookie=$(sed -n 's/^customer_cookie=//p' <<<"$setup")
  admin_cookie=$(sed -n 's/^admin_cookie=//p' <<<"$setup")
  local peak_file="$WORK/peak-$backend" peak=0
  local name path cookie status size c page base
  for spec in "booking page with slots|/book/$service_id|" \
    "customer's bookings (5)|/bookings|$customer_cookie" \
    "admin integration health|/admin/integrations|$admin_cookie"; do
    IFS='|' read -r name path cookie <<<"$spec"
    status=$(curl -s -o "$WORK/body" -w '%{http_code}' ${cookie:+-H "Cookie: $cookie"} "http://127.0.0.1:$PORT$path")
    if [ "$status" != 200 ]; then
      echo "  $path answered $status, not 200: not measured"
      echo "| $backend | $name \`$path\`: answered **$status**, not measured | | | | | | | | |" >>"$PAGES"
      continue
    fi
    size=$(stat -c %s "$WORK/body")
    start_server "http://127.0.0.1:$BASE_PORT/readyz" "$BIN/baseline" "127.0.0.1:$BASE_PORT" "$size"
    if [ -z "$BASELINE_READY" ]; then
      BASELINE_READY=$READY_MS
      sleep 1
      BASELINE_RSS=$(rss_mb "$STARTED_PID")
    fi
    local baseline_pid=$STARTED_PID
    for c in 16 64; do
      base=$(load "http://127.0.0.1:$BASE_PORT$path" "$c")
      if [ "$c" = 64 ]; then
        touch "$WORK/sampling"
        sample_rss "$portal" "$peak_file.now" &
        local sampler=$!
      fi
      page=$(load "http://127.0.0.1:$PORT$path" "$c" "$cookie")
      if [ "$c" = 64 ]; then
        rm -f "$WORK/sampling"
        wait "$sampler"
        peak=$(awk -v a="$peak" -v b="$(cat "$peak_file.now")" 'BEGIN { print (b > a ? b : a) }')
      fi
      read -r p_rps p_50 p_99 p_err <<<"$page"
      read -r b_rps b_50 b_99 b_err <<<"$base"
      local ratio
      ratio=$(awk -v p="$p_rps" -v b="$b_rps" 'BEGIN { r = (b > 0 ? p / b : 0); printf "%.2f%s", r, (r >= 0.5 ? "" : " **missed**") }')
      local note=""
      [ "$p_err" != 0 ] && note=" ($p_err errors)"
      [ "$b_err" != 0 ] && note="$note (ceiling: $b_err errors)"
      echo "  $path c=$c: $p_rps req/s vs ceiling $b_rps ($ratio)$note"
      echo "| $backend | $name \`$path\` ($size) | $c | $p_rps$note | $b_rps | $ratio | $p_50 ms | $p_99 ms | $b_50 ms | $b_99 ms |" >>"$PAGES"
    done
    stop_server "$baseline_pid"
  done
  stop_server "$portal"
  start_server "http://127.0.0.1:$PORT/readyz" "$BIN/stoep" serve
  local restart_ready=$READY_MS
  stop_server "$STARTED_PID"
  local verdict
  verdict=$(awk -v m="$idle_rss" -v a="$first_ready" -v b="$restart_ready" 'BEGIN {
    printf "idle < 60 MB: %s; ready < 1 s: %s", (m < 60 ? "met" : "**missed**"), (a < 1000 && b < 1000 ? "met" : "**missed**") }')
  echo "| \`stoep serve\` | $backend | $idle_rss MB | $peak MB | $first_ready ms (new database: migrations, demo data) | $restart_ready ms | $verdict |" >>"$MEMORY"
}

bench_pages sqlite
bench_pages postgres
echo "| baseline (bare axum, static body) | none | $BASELINE_RSS MB | | $BASELINE_READY ms | | |" >>"$MEMORY"

say "Slot search"
SLOTS=$("$BIN/slot_search" 200)
echo "$SLOTS"

say "Booking creation under contention"
BOOKINGS="$WORK/bookings.md"
echo "| database | measure | requests/s | bookings/s | p50 | p99 | requests/s ÷ baseline | outcome |" >"$BOOKINGS"
echo "|---|---|---|---|---|---|---|---|" >>"$BOOKINGS"
for backend in sqlite postgres; do
  use_database "bookings" "$backend"
  "$BIN/booking_contention" "$backend" 64 2000 | tee -a "$BOOKINGS"
done

say "Job throughput (PostgreSQL)"
JOBS="$WORK/jobs.md"
echo "| measure | value | ÷ baseline | notes |" >"$JOBS"
echo "|---|---|---|---|" >>"$JOBS"
use_database "jobs" postgres
"$BIN/job_throughput" "$BIN/stoep" 5000 | tee -a "$JOBS"

say "Wasm bundle"
WASM="$ROOT/target/site/pkg/stoep.wasm"
WASM_CRATES=""
if [ "${BENCH_WASM:-0}" = 1 ]; then
  ensure_rust_tools
  ensure_npm "$ROOT"
  # Symbols kept in cargo's own output (wasm-bindgen and wasm-opt still drop them from the
  # bundle), so bench/wasm_sizes.py can say where the bytes go.
  CARGO_PROFILE_WASM_RELEASE_STRIP=false cargo leptos build --release --precompress
  PRE=$(find "$CARGO_TARGET_DIR" -path '*wasm32-unknown-unknown/wasm-release/frontend.wasm' -printf '%T@ %p\n' 2>/dev/null | sort -rn | awk 'NR == 1 {print $2}')
  [ -n "$PRE" ] && WASM_CRATES=$(python3 "$ROOT/bench/wasm_sizes.py" "$PRE" 12 | sed -n '/^code by crate/,/^$/p' | tail -n +2 | sed '/^$/d' \
    | awk '{printf "| %s | %s | %s %% |\n", $6, $1, $2}')
fi
# Only a bundle this run built in release counts: target/site may hold a debug build.
if [ "${BENCH_WASM:-0}" = 1 ] && [ -f "$WASM" ]; then
  RAW=$(stat -c %s "$WASM")
  GZ=$(gzip -9 -c "$WASM" | wc -c)
  BR=$(stat -c %s "$WASM.br" 2>/dev/null || echo 0)
  SERVED=$([ "$BR" -gt 0 ] && echo "$BR" || echo "$GZ")
  WASM_LINE="| \`target/site/pkg/stoep.wasm\` (release, built $(date -u -r "$WASM" '+%Y-%m-%d %H:%M UTC')) | $((RAW / 1024)) KB | $((GZ / 1024)) KB | $((BR / 1024)) KB | $([ $((SERVED / 1024)) -lt 400 ] && echo met || echo '**missed**') |"
else
  WASM_LINE="| not measured in this run (run with BENCH_WASM=1 to build the release site first) | | | | |"
fi
echo "$WASM_LINE"

ELAPSED=$(($(date +%s) - RUN_START))
{
  echo "# Benchmark results"
  echo
  echo "Run by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') in $((ELAPSED / 60)) min $((ELAPSED % 60)) s, on: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr), load average before the run $(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/'); $(psql "$PG_ADMIN" -Atc 'SHOW server_version' 2>/dev/null | sed 's/^/PostgreSQL /'), SQLite (bundled with sqlx), wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}')."
  echo "The machine is shared and noisy (wrk and the server share its cores): compare the ratios, each against a baseline measured minutes apart in the same run, not absolute figures across runs."
  echo
  echo "## Pages (server-rendered HTML)"
  echo
  echo "wrk, 2 threads, ${SECS} s per figure, \`--latency\`; every page answered 200 before it was measured. The ceiling is \`bench/src/baseline.rs\`: a bare axum server (same runtime and HTTP stack) answering with a static HTML body of the same size, run just before the page with the same load. Signed-in pages send the session cookie of a customer with five bookings, or of an admin signed in with password and TOTP code."
  echo
  cat "$PAGES"
  echo
  echo "## Slot search"
  echo
  echo "$SLOTS"
  echo
  echo "## Booking creation under contention"
  echo
  echo "In process through \`app::ssr::booking::create\` (the server function's own path without HTTP), 64 clients, 20 staff, all clients aiming at the free starts of one day at a time (150 requests per day), \"with anyone\"; each request ends booked or refused as taken. Afterwards the bookings table is checked for overlapping active bookings of one member of staff. Baseline: one INSERT per request in a write transaction, same database, pool and clients. Target: at least 300 bookings per second on SQLite, no double booking."
  echo
  cat "$BOOKINGS"
  echo
  echo "## Job throughput (PostgreSQL)"
  echo
  echo "Real \`stoep worker\` processes with default settings draining \`system.noop\` jobs (rate from the jobs' own timestamps: first attempt started to last finished)."
  echo
  cat "$JOBS"
  echo
  echo "## Memory and start-up"
  echo
  echo "VmRSS from \`/proc/<pid>/status\`: at idle 2 s after ready (before any load); peak sampled every 0.2 s during the 64-connection page runs. Start to ready: launch to the first 200 from \`/readyz\`, polled every 10 ms."
  echo
  cat "$MEMORY"
  echo
  echo "## Wasm bundle"
  echo
  echo "\`cargo leptos build --release --precompress\` (opt-level z, LTO, one codegen unit, panic=abort, then wasm-opt -Oz). The server sends the brotli file (\`.br\`, made by the build) to browsers that accept it, gzip otherwise; the target applies to what is sent."
  echo
  echo "| file | raw | gzip -9 | brotli (served) | target: < 400 KB compressed |"
  echo "|---|---|---|---|---|"
  echo "$WASM_LINE"
  if [ -n "$WASM_CRATES" ]; then
    echo
    echo "Where the code goes (\`bench/wasm_sizes.py\` on cargo's output before wasm-bindgen and wasm-opt, which shrink it further; functions grouped by the crate their symbol names, a trait impl by the trait's crate unless the trait is the standard library's):"
    echo
    echo "| crate | code bytes | share of code |"
    echo "|---|---|---|"
    echo "$WASM_CRATES"
  fi
} >"$OUT"
say "Wrote $OUT (${ELAPSED} s)"
