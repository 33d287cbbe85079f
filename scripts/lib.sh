# Shared by run.sh, test.sh and bench/run.sh: where the build cache lives, and installing what the
# build needs when it is missing. Every step checks first, so running twice is cheap and safe.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# The build cache lives outside the clone, so later runs on this machine (and CI) reuse it.
export STOEP_CACHE_DIR="${STOEP_CACHE_DIR:-$HOME/.cache/stoep}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$STOEP_CACHE_DIR/target}"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

CARGO_LEPTOS_VERSION=0.3.10
WASM_BINDGEN_VERSION=0.2.130

say() { printf '\n==> %s\n' "$*"; }

have_version() { # command, expected substring
  command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -q "$2"
}

ensure_rust_tools() {
  if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
    say "Installing the wasm32 target (rustup)"
    rustup target add wasm32-unknown-unknown
  fi
  if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
    say "Installing cargo-leptos $CARGO_LEPTOS_VERSION from crates.io (about 15 minutes, once)"
    cargo install "cargo-leptos@$CARGO_LEPTOS_VERSION" --locked --features no_downloads
  fi
  if ! have_version wasm-bindgen "$WASM_BINDGEN_VERSION"; then
    say "Installing wasm-bindgen-cli $WASM_BINDGEN_VERSION from crates.io (about 3 minutes, once)"
    # Not --locked: its lockfile names a webpki-roots release the registry here does not have.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
}

ensure_npm() { # folder
  local dir="$1"
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "Installing npm packages in ${dir#$ROOT/}"
    (cd "$dir" && npm ci --no-audit --no-fund)
  fi
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    say "Installing Debian's Chromium for the browser tests"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
    fi
  fi
}

ensure_nextest() {
  if ! command -v cargo-nextest >/dev/null 2>&1; then
    say "Installing cargo-nextest from crates.io"
    cargo install cargo-nextest --locked
  fi
}

# cargo-deny for the lint gate's licence, ban and source checks (scripts/lint.sh).
DENY_VERSION=0.20.2
ensure_deny() {
  if ! cargo deny --version 2>/dev/null | grep -q "$DENY_VERSION"; then
    say "Installing cargo-deny $DENY_VERSION from crates.io"
    cargo install cargo-deny --version "$DENY_VERSION" --locked
  fi
}

# The S3-protocol server the document tests run against: moto's server (PyPI `moto[server]`),
# in its own virtualenv in the build cache. Pinned, so every machine tests against the same one.
MOTO_VERSION=5.2.5
S3_VENV="$STOEP_CACHE_DIR/s3-server"
export STOEP_TEST_S3_PORT="${STOEP_TEST_S3_PORT:-9100}"
export STOEP_TEST_S3_URL="${STOEP_TEST_S3_URL:-http://127.0.0.1:$STOEP_TEST_S3_PORT}"

ensure_s3_server() {
  if ! "$S3_VENV/bin/moto_server" --help >/dev/null 2>&1 ||
    ! "$S3_VENV/bin/python" -m pip show moto 2>/dev/null | grep -q "^Version: $MOTO_VERSION$"; then
    say "Installing the S3 test server (moto[server] $MOTO_VERSION from PyPI, into $S3_VENV)"
    python3 -m venv "$S3_VENV"
    "$S3_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
}

# Starts the S3 test server on 127.0.0.1:$STOEP_TEST_S3_PORT (unless one already answers there)
# and stops it when the calling script exits.
start_s3_server() { # log dir
  if curl -fsS -o /dev/null "$STOEP_TEST_S3_URL/moto-api/" 2>/dev/null; then
    echo "An S3 test server already answers on $STOEP_TEST_S3_URL; using it."
    return
  fi
  "$S3_VENV/bin/moto_server" -H 127.0.0.1 -p "$STOEP_TEST_S3_PORT" >"$1/s3-server.log" 2>&1 &
  S3_SERVER_PID=$!
  trap 'kill $S3_SERVER_PID 2>/dev/null || true' EXIT
  if ! wait_for "$STOEP_TEST_S3_URL/moto-api/" 30; then
    echo "The S3 test server did not start; its log:"; cat "$1/s3-server.log"; exit 1
  fi
  echo "S3 test server (moto) on $STOEP_TEST_S3_URL"
}

stop_s3_server() {
  if [ -n "${S3_SERVER_PID:-}" ]; then
    kill "$S3_SERVER_PID" 2>/dev/null || true
    wait "$S3_SERVER_PID" 2>/dev/null || true
    trap - EXIT
    S3_SERVER_PID=
  fi
}

# Builds the site (wasm, JS, CSS into target/site) and the `stoep` binary, debug profile.
build_debug() {
  say "Building the portal (cargo leptos build)"
  cargo leptos build
}

# Waits for an HTTP endpoint to answer 200.
wait_for() { # url, seconds
  local url="$1" secs="${2:-60}" i=0
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt $((secs * 5)) ]; then
      return 1
    fi
    sleep 0.2
  done
}
