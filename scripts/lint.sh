#!/usr/bin/env bash
# The lint gate, run by the test command (so CI runs it): formatting, clippy with warnings denied
# for both builds of the UI (the server's `ssr` and the browser's `hydrate`), and cargo-deny's
# licence, ban and source checks. cargo-deny's advisory check needs RustSec's database from the
# network, which this build machine does not reach: run `cargo deny check advisories` where it
# does. Usage: lint.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_deny

say "Formatting (cargo fmt --check)"
cargo fmt --all --check

say "Clippy, server build (ssr), warnings denied"
cargo clippy -p model -p domain -p app -p standins -p server -p stoep-bench -p migration -p slots -p guards \
  --all-targets -- -D warnings

say "Clippy, browser build (hydrate, wasm32), warnings denied"
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

say "Dependencies (cargo deny: licences, bans, sources)"
cargo deny --log-level error check licenses bans sources
