#!/usr/bin/env bash
# Runs the benchmarks (release builds) and writes bench/RESULTS.md.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
OUT="$ROOT/bench/RESULTS.md"
say "Slot search benchmark (release build)"
TABLE=$(cargo run --quiet --release -p stoep-bench --bin slot_search -- "${1:-200}")
echo "$TABLE"
{
  echo "# Benchmark results"
  echo
  echo "Run by \`bench/run.sh\` on $(date -u +%Y-%m-%d) on: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB."
  echo "The machine is shared and noisy: compare ratios within one run, not absolute times across runs."
  echo
  echo "## Slot search"
  echo
  echo "$TABLE"
} >"$OUT"
echo "Wrote $OUT"
