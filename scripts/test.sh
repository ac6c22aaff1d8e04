#!/usr/bin/env bash
# Runs every Switchyard test on a fresh machine: formatting, lints, unit and integration tests.
# It installs what it needs first, so it is also what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain components"
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "unit and integration tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-targets 2>&1 | tee "$log"
cargo test --workspace --doc 2>&1 | tee -a "$log"

# One closing line for the whole run.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "\nrust: %d passed, %d failed\n", passed, failed }' "$log"
