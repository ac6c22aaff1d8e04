#!/usr/bin/env bash
# The media engine's own benchmarks, on loopback, each against a freshly started release
# server, and the "Media engine" section of docs/benchmarks.md written from them:
#
#   - what a connection costs: 200 idle participants (scenario idle-200), and a room of 50
#     publishing audio only (audio-room-of-50), per connection;
#   - scale: 500 participants on one process and its one media port, with loss and latency
#     (scale-500), and the server's counts back to zero after they leave;
#   - cores: room-of-eight and twenty-rooms-of-five with one media worker, with two, and with
#     two told to spread every connection (--media-spread-when-busy 0), in alternating rounds.
#
#   bench/engine.sh                 # everything, docs/benchmarks.md rewritten
#   bench/engine.sh --no-docs       # print the section only
#   ROUNDS=5 bench/engine.sh        # more rounds for the cores comparison (default 3)
#
# Everything runs in a network namespace of its own holding only loopback, so no packet
# leaves the machine, and every server it starts is stopped when the script ends.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."
source bench/lib.sh

rounds=${ROUNDS:-3}
port=18090
say() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Inside the namespace: one server per run, one JSON report per run.
# ---------------------------------------------------------------------------------------------
if [ "${1:-}" = "--inside" ]; then
  work=$2
  ip link set lo up
  server_pid=""
  stop_server() {
    if [ -n "$server_pid" ]; then
      kill -INT "$server_pid" 2>/dev/null || true
      wait "$server_pid" 2>/dev/null || true
      server_pid=""
    fi
  }
  trap stop_server EXIT
  counts() { exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /api/counts HTTP/1.0\r\n\r\n' >&3 && sed -n '/^{/p' <&3; }
  crossings() {
    exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 &&
      awk '$1 == "switchyard_media_worker_crossings_total" { print $2 }' <&3
  }
  # run NAME SCENARIO [server flags...]
  run() {
    local name=$1 scenario=$2
    shift 2
    say "== $name"
    # Hundreds of participants connect from 127.0.0.1: no cap on connections per address.
    target/release/switchyard --http "127.0.0.1:$port" --media-ip 127.0.0.1 --connections-per-ip 0 "$@" \
      >"$work/$name.server.log" 2>&1 &
    server_pid=$!
    wait_for_server 127.0.0.1 "$port" "$server_pid" "$work/$name.server.log"
    target/release/loadtest --url "ws://127.0.0.1:$port/ws" --scenario "$scenario" \
      --server-pid "$server_pid" --quiet --json "$work/$name.json" --markdown "$work/$name.md" \
      | tee "$work/$name.txt" >&2
    crossings >"$work/$name.crossings"
    # Everybody has left: the server's counts must come back to zero, and soon.
    local waited=0 now
    while now=$(counts) && [ "$now" != '{"rooms":0,"participants":0,"peers":0,"publications":0,"subscriptions":0}' ]; do
      [ "$waited" -ge 300 ] && break
      sleep 0.1
      waited=$((waited + 1))
    done
    printf '%s %s\n' "$now" "$waited" >"$work/$name.counts"
    stop_server
  }
  run idle-200 idle-200
  run audio-room-of-50 audio-room-of-50
  run scale-500 scale-500
  for round in $(seq "$rounds"); do
    for scenario in room-of-eight twenty-rooms-of-five; do
      run "$scenario.1-workers.$round" "$scenario" --media-workers 1
      run "$scenario.2-workers.$round" "$scenario" --media-workers 2
      run "$scenario.2-spread.$round" "$scenario" --media-workers 2 --media-spread-when-busy 0
    done
  done
  exit 0
fi

write_docs=1
[ "${1:-}" = "--no-docs" ] && write_docs=0

say "== building (release)"
cargo build --release --quiet -p switchyard -p loadtest --bins
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
namespace=(unshare --net)
[ "$(id -u)" -eq 0 ] || namespace=(unshare --map-root-user --net)
"${namespace[@]}" bash "$self" --inside "$work"

# ---------------------------------------------------------------------------------------------
# The section, from the reports.
# ---------------------------------------------------------------------------------------------
field() { jq -r "$2" "$work/$1.json"; }
fixed() { awk -v v="$1" -v d="$2" 'BEGIN { if (v == "null" || v == "") print "n/a"; else printf "%.*f", d, v }'; }

cost_row() {
  local name=$1 label=$2 connections
  connections=$(field "$name" .participants.connected)
  jq -r --arg title "$label" --argjson n "$connections" '
    (.server.cpu_seconds / .window_seconds) as $cores
    | "| \($title) | \(.participants.connected)/\(.participants.planned) | \(.server.forwarded_per_second | floor) | \($cores * 100 * 100 | round / 100)% | \($cores / $n * 1e6 | round) µs | \(.server.rss_bytes / 1048576 | round) MiB | \(.server.rss_bytes / $n / 1024 | round) KiB |"
  ' "$work/$name.json"
}

cores_rows() {
  local scenario=$1
  for setup in 1-workers:1 2-workers:2 "2-spread:2, spread from 0"; do
    local name=${setup%%:*} workers=${setup#*:} files=() crossed=0
    for round in $(seq "$rounds"); do
      files+=("$work/$scenario.$name.$round.json")
      local value
      value=$(cat "$work/$scenario.$name.$round.crossings" 2>/dev/null || true)
      crossed=$((crossed + ${value:-0}))
    done
    crossed=$((crossed / rounds))
    jq -s -r --arg scenario "$scenario" --arg workers "$workers" --arg crossed "$crossed" '
      (map(.server.cpu_seconds) | add) as $cpu
      | (map(.server.forwarded_packets) | add) as $packets
      | (map(.server.forwarded_per_cpu_second) | min) as $low
      | (map(.server.forwarded_per_cpu_second) | max) as $high
      | "| `\($scenario)` | \($workers) | \(map(.server.forwarded_per_second) | add / length | floor) | \(map(.server.cpu_percent) | add / length * 10 | round / 10)% | \($cpu * 1e6 / $packets * 10 | round / 10) | \($packets / $cpu | round) (\($low | round)–\($high | round)) | \($crossed) | \(map(.video.loss_worst * 100) | max * 1000 | round / 1000)% |"
    ' "${files[@]}"
  done
}

counts_line() {
  local now waited
  read -r now waited <"$work/$1.counts"
  awk -v n="$now" -v w="$waited" 'BEGIN { printf "`%s`, %.1f s after the load test ended", n, w / 10 }'
}

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
commit=$(git rev-parse --short HEAD)
if ! git diff --quiet HEAD -- src loadtest benches Cargo.toml Cargo.lock 2>/dev/null; then
  commit="$commit with local changes"
fi
section=$(cat <<SECTION
<!-- engine:begin -->
## Media engine

Generated by \`bench/engine.sh\` on $(date -u +%Y-%m-%d) at commit \`$commit\`. Machine: $(nproc)
cores ($cpu_model), $(free -g | awk '/^Mem:/ {print $2}') GiB, Linux $(uname -r). Each run starts
a fresh release server on loopback, in a network namespace of its own, and the load test on the
same two cores; the server's CPU time and memory come from \`/proc\`, over the measurement
window. The raw reports are in \`docs/benchmarks/engine/\`.

\`\`\`sh
bench/engine.sh
\`\`\`

### What a connection costs

Scenarios \`idle-200\` (20 rooms of 10; every participant's camera and microphone negotiated and
switched off, so the server keeps ICE consent, DTLS, RTCP and its timers going for 200
connections with 20 transceivers each, and forwards nothing) and \`audio-room-of-50\` (one room,
everybody publishing Opus at 50 packets a second, each receiving the other 49), with the
default workers (one per core).

| scenario | connected | forwarded packets/s | server CPU, % of one core | CPU per connection, per second | peak RSS | RSS per connection |
|---|---|---|---|---|---|---|
$(cost_row idle-200 '200 idle participants')
$(cost_row audio-room-of-50 'a room of 50, audio only')

The room of 50 forwards $(field audio-room-of-50 .server.forwarded_per_second | xargs printf '%.0f') packets a second; its audio latency
(p50 / p99: $(field audio-room-of-50 '.audio.latency_ms.p50' | xargs printf '%.0f') / $(field audio-room-of-50 '.audio.latency_ms.p99' | xargs printf '%.0f') ms) and loss ($(field audio-room-of-50 '.audio.loss * 100' | xargs printf '%.2f')%) are the load
test's: its 50 synthetic participants receive 2,450 streams on the second core, which they fill.

### Scale: 500 participants on one process and one port

Scenario \`scale-500\`: five rooms, each one publisher of 300 kbit/s video and audio and 99
receivers; every participant behind 1% loss and 20 ± 5 ms delay each way, in the load test's
user-space link. Every connection uses the one media port.

$(cat "$work/scale-500.md")

Counts after everybody left: $(counts_line scale-500). (After \`idle-200\`:
$(counts_line idle-200); after \`audio-room-of-50\`: $(counts_line audio-room-of-50).)

### Cores: one media worker and two

Each scenario with \`--media-workers 1\`, with \`--media-workers 2\`, and with two workers told to
spread every connection (\`--media-spread-when-busy 0\`), in $rounds alternating rounds; per-packet
cost pools the rounds (their CPU time over their packets), the range is the lowest and highest
round. "Crossed" is what one worker handed another in a run (datagrams and forwarded packets,
\`switchyard_media_worker_crossings_total\`, mean of the rounds). By default a room's
connections share one worker until it is three quarters busy (docs/architecture.md,
"Concurrency"): neither load comes near that here, so with two workers everything stays on the
reading worker, nothing crosses, and the work is the same as with one; the differences between
those two rows are the machine's run-to-run noise, which the ranges show. The spread rows
deal every connection over both workers, as the default does once a worker is busy, and show
what crossing costs.

| scenario | workers | forwarded packets/s | server CPU, % of one core | CPU µs per forwarded packet | forwarded packets per CPU-second (rounds: low–high) | crossed | worst video loss |
|---|---|---|---|---|---|---|---|
$(cores_rows room-of-eight)
$(cores_rows twenty-rooms-of-five)
<!-- engine:end -->
SECTION
)

printf '\n%s\n' "$section"
if [ "$write_docs" -eq 1 ]; then
  rm -rf docs/benchmarks/engine
  mkdir -p docs/benchmarks/engine
  cp "$work"/*.txt "$work"/*.json "$work"/*.counts "$work"/*.crossings docs/benchmarks/engine/
  write_section engine "$section"
fi
