#!/usr/bin/env bash
# Profiles the server under a load-test scenario: a release server on loopback, the scenario
# against it, and `perf record` on the server for 15 s of the measurement window. Prints the
# load test's headline and the hottest symbols; the profile stays in target/profile/.
#
#   bench/profile.sh                          # room-of-25, the release build of this checkout
#   bench/profile.sh room-of-ten              # another scenario of loadtest/scenarios.toml
#   SERVER=/tmp/old/switchyard LOADTEST=/tmp/old/loadtest bench/profile.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

scenario=${1:-room-of-25}
port=18300
out=target/profile
mkdir -p "$out"
cargo build --release --workspace --quiet
server=${SERVER:-target/release/switchyard}
loadtest=${LOADTEST:-target/release/loadtest}

"$server" --http "127.0.0.1:$port" --media-ip 127.0.0.1 --connections-per-ip 0 \
  >"$out/$scenario.server.log" 2>&1 &
server_pid=$!
trap 'kill -INT "$server_pid" 2>/dev/null || true' EXIT
wait_for_server 127.0.0.1 "$port" "$server_pid" "$out/$scenario.server.log"
"$loadtest" --url "ws://127.0.0.1:$port/ws" --scenario "$scenario" \
  --server-pid "$server_pid" --quiet >"$out/$scenario.loadtest.txt" &
loadtest_pid=$!
# Past the ramp-up, inside the measurement window.
sleep 15
perf record -F 999 -g -p "$server_pid" -o "$out/$scenario.perf.data" -- sleep 15 >/dev/null 2>&1
wait "$loadtest_pid"
grep -E '^(joined|server) ' "$out/$scenario.loadtest.txt"
perf report -i "$out/$scenario.perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
  grep -E '^ +[0-9]' | head -20 | cut -c1-150
