#!/usr/bin/env bash
# Compares two builds of `stoep` on the same pages, turn about, so the machine's noise falls on
# both: for each round and page, binary A then binary B serve a fresh SQLite portal with demo data
# and wrk loads the page (16 connections). Prints requests/s and p99 per run, the median ratio
# B/A per page, and the voluntary context switches per request (all of the server's threads,
# from /proc), which is what the database's thread hops cost.
# Usage: bench/compare.sh BIN_A BIN_B [seconds per run, default 8] [rounds, default 3]
# Build the binaries first (cargo build --release -p server -p stoep-bench, copying one aside).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

A="$1"; B="$2"; SECS="${3:-8}"; ROUNDS="${4:-3}"
SETUP_BIN="$CARGO_TARGET_DIR/release/page_setup"
PORT=3330
WORK="$(mktemp -d -t stoep-compare.XXXXXX)"
SERVER=""
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || sudo apt-get install -y -qq wrk; }

ctx_switches() { # pid: voluntary context switches of all its threads
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s}'
}

run_one() { # binary, page -> "req/s p99 ctx/request"
  local bin="$1" page="$2" data="$WORK/data.$RANDOM"
  mkdir -p "$data" "$WORK/site"
  # Exported: page_setup opens the same database from the same settings.
  export STOEP_CONFIG=/dev/null STOEP_LISTEN="127.0.0.1:$PORT" STOEP_PUBLIC_URL="http://127.0.0.1:$PORT" \
    STOEP_SITE_ROOT="$WORK/site" STOEP_LOG_LEVEL=warn STOEP_DEMO=true STOEP_DATA_DIR="$data" \
    STOEP_MAIL_CATCHER__LISTEN="127.0.0.1:$((PORT + 1))" STOEP_STRIPE__STANDIN_LISTEN="127.0.0.1:$((PORT + 2))" \
    STOEP_CRM__STANDIN_LISTEN="127.0.0.1:$((PORT + 3))"
  "$bin" serve >"$WORK/server.log" 2>&1 &
  SERVER=$!
  wait_for "http://127.0.0.1:$PORT/readyz" 60 >/dev/null
  local setup url cookie
  setup=$("$SETUP_BIN" "http://127.0.0.1:$PORT") || { echo "page_setup failed" >&2; exit 1; }
  case "$page" in
    book) url="/book/$(sed -n 's/^service_id=//p' <<<"$setup")"; cookie="" ;;
    bookings) url="/bookings"; cookie="$(sed -n 's/^customer_cookie=//p' <<<"$setup")" ;;
    admin) url="/admin/integrations"; cookie="$(sed -n 's/^admin_cookie=//p' <<<"$setup")" ;;
  esac
  # Warm up, then count context switches over a fixed number of sequential requests.
  [ "$(curl -s -o /dev/null -w '%{http_code}' ${cookie:+-H "Cookie: $cookie"} "http://127.0.0.1:$PORT$url")" = 200 ] \
    || { echo "$url did not answer 200" >&2; exit 1; }
  wrk -t1 -c4 -d2s ${cookie:+-H "Cookie: $cookie"} "http://127.0.0.1:$PORT$url" >/dev/null
  local c0 c1 n=200
  c0=$(ctx_switches "$SERVER")
  for _ in $(seq $n); do curl -s -o /dev/null ${cookie:+-H "Cookie: $cookie"} "http://127.0.0.1:$PORT$url"; done
  c1=$(ctx_switches "$SERVER")
  local out
  out=$(wrk -t2 -c16 -d"${SECS}s" --latency ${cookie:+-H "Cookie: $cookie"} "http://127.0.0.1:$PORT$url")
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
  rm -rf "$data"
  local rps p99
  rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$rps $p99 $(( (c1 - c0) / n ))"
}

echo "| page | round | A requests/s | B requests/s | B/A | A p99 | B p99 | A switches/request | B switches/request |"
echo "|---|---|---|---|---|---|---|---|---|"
for page in book bookings admin; do
  ratios=()
  for r in $(seq "$ROUNDS"); do
    read -r ra pa ca <<<"$(run_one "$A" "$page")"
    read -r rb pb cb <<<"$(run_one "$B" "$page")"
    ratio=$(awk -v a="$ra" -v b="$rb" 'BEGIN {printf "%.2f", b / a}')
    ratios+=("$ratio")
    echo "| $page | $r | $ra | $rb | $ratio | $pa | $pb | $ca | $cb |"
  done
  echo "| $page | median | | | $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}') | | | | |"
done
