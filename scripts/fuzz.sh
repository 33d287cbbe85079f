#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input (guards/: webhook signatures, upload sniffing) and the slot
# engine (slots/) with cargo-fuzz and libFuzzer. Each target in fuzz/fuzz_targets/ runs for the
# given number of seconds, starting from its corpus in fuzz/corpus/<target>/. A crash (a panic, a
# failed assertion, a timeout or running out of memory) fails the script, which prints the input
# that caused it (saved under fuzz/artifacts/<target>/) and how to run it again.
#
#   scripts/fuzz.sh                 10 s per target (what scripts/test.sh runs)
#   scripts/fuzz.sh 600             10 minutes per target
#   scripts/fuzz.sh 600 --keep      ... and merge the inputs that reached new code into
#                                   fuzz/corpus/ (review and commit them)
#   scripts/fuzz.sh 60 slots        only the named targets
#
# Without --keep the repository is left as it was: new inputs go to a temporary folder, listed
# first (libFuzzer writes to its first corpus folder), and fuzz/corpus/<target>/ is only read.
# Installs cargo-fuzz from crates.io when it is missing. Safe to run twice.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_PER_TARGET=10
KEEP=false
TARGETS=()
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=true ;;
    '' | *[!0-9]*) TARGETS+=("$arg") ;;
    *) SECONDS_PER_TARGET="$arg" ;;
  esac
done
if [ "${#TARGETS[@]}" -eq 0 ]; then
  TARGETS=(webhook_signature payfast_itn paystack_webhook whatsapp_webhook upload_sniff sms_segments ical_read slots)
fi

START=$(date +%s)
FUZZ_DIR="$ROOT/fuzz"
# Its own target directory, always (even when the caller exported the portal's): the fuzz build
# uses nightly, sanitizer and coverage flags, and sharing a folder with the portal's build would
# make each rebuild the other's dependencies.
export CARGO_TARGET_DIR="${STOEP_FUZZ_TARGET_DIR:-$STOEP_CACHE_DIR/fuzz-target}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
BIN_DIR="$CARGO_TARGET_DIR/$TRIPLE/release"

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "Installing cargo-fuzz from crates.io (about 2 minutes, once)"
  # Not into the fuzz target directory: `cargo install` builds in a temporary one without it.
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --version 0.13.2 --locked
fi

# cargo-fuzz needs nightly rustc (it passes -Z flags such as -Zsanitizer=address). Use the
# nightly toolchain when rustup has one; otherwise the stable rustc, told to accept nightly flags
# with RUSTC_BOOTSTRAP=1 (meant for building Rust itself, but the sanitizer runtimes and the
# coverage instrumentation libFuzzer needs ship with stable too; checked with 1.95: the targets
# build and run, AddressSanitizer included).
if cargo +nightly --version >/dev/null 2>&1; then
  TOOLCHAIN=(+nightly)
else
  echo "No nightly toolchain; building the fuzz targets with stable rustc and RUSTC_BOOTSTRAP=1."
  export RUSTC_BOOTSTRAP=1
  TOOLCHAIN=()
fi

say "Building the fuzz targets (cargo fuzz build, AddressSanitizer, debug assertions) into $CARGO_TARGET_DIR"
# Debug assertions and overflow checks on (-a), so an overflow is a crash, not a wrong answer.
# AddressSanitizer (cargo-fuzz's default) slows each run and adds little for this safe code, but
# catches memory errors in the unsafe code of the standard library and the dependencies; it builds
# and runs here, so it stays on.
(cd "$ROOT" && cargo "${TOOLCHAIN[@]}" fuzz build --debug-assertions --sanitizer address)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
FAILED=()
for target in "${TARGETS[@]}"; do
  bin="$BIN_DIR/$target"
  seeds="$FUZZ_DIR/corpus/$target"
  if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
    echo "Unknown fuzz target $target (the targets are in fuzz/fuzz_targets/, their corpora in fuzz/corpus/)."
    exit 2
  fi
  found="$WORK/$target"
  artifacts="$FUZZ_DIR/artifacts/$target"
  log="$WORK/$target.log"
  mkdir -p "$found" "$artifacts"
  say "Fuzzing $target for $SECONDS_PER_TARGET s ($(find "$seeds" -type f | wc -l) inputs in fuzz/corpus/$target)"
  # -timeout: one input taking this long is a crash (the slowest normal inputs take milliseconds).
  # -seed: short runs (the test command) use a fixed seed, so a run explores the same inputs each
  # time and CI stays reproducible; --keep runs (exploration by hand) draw a random one. FUZZ_SEED
  # overrides both.
  seed="${FUZZ_SEED:-$([ "$KEEP" = true ] && echo 0 || echo 1)}"
  if "$bin" -seed="$seed" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "$found" "$seeds" >"$log" 2>&1; then
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    echo "$target: no crash in ${runs:-?} runs; $(find "$found" -type f | wc -l) new inputs reached new code."
    if $KEEP; then
      before=$(find "$seeds" -type f | wc -l)
      "$bin" -merge=1 "$seeds" "$found" >"$WORK/$target.merge.log" 2>&1
      echo "Merged into fuzz/corpus/$target: $(($(find "$seeds" -type f | wc -l) - before)) new files."
    fi
  else
    # The panic message (or sanitizer report) and libFuzzer's summary; the whole log is long.
    sed -n '/panicked at\|ERROR: libFuzzer\|==[0-9]*==ERROR/,+8p' "$log" | head -n 40
    echo "..."
    tail -n 12 "$log"
    crash="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
    echo
    echo "FUZZ TARGET $target FAILED. The input that failed: ${crash:-(none written; see the output above)}"
    if [ -n "$crash" ]; then
      echo "Run it again: $bin $crash"
      echo "Or shrink it: $bin -minimize_crash=1 -runs=10000 $crash"
    fi
    FAILED+=("$target")
  fi
done

if [ "${#FAILED[@]}" -gt 0 ]; then
  say "Fuzzing failed: ${FAILED[*]}"
  exit 1
fi
say "Fuzzing passed (${#TARGETS[@]} targets, $SECONDS_PER_TARGET s each) in $(($(date +%s) - START)) s"
