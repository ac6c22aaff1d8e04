#!/usr/bin/env bash
# Switchyard and Janus side by side: the same load on both SFUs, on this machine, each run in
# turn (Switchyard, Janus, Switchyard, Janus), and one table per scenario with both servers'
# figures and the ratio Switchyard / Janus. It also measures the floor under forwarding
# (`cargo bench --bench forward_floor`) to set both servers against, and rewrites the
# "Switchyard vs Janus" section of docs/benchmarks.md from the results.
#
#   bench/compare-janus.sh                      # both scenarios, two rounds, docs rewritten
#   bench/compare-janus.sh --no-docs            # print the tables only
#   bench/compare-janus.sh broadcast-100        # just this scenario (docs left alone)
#   bench/compare-janus.sh --keep /tmp/runs     # also keep every run's report and server log
#   bench/compare-janus.sh --from /tmp/runs     # the tables and docs again from kept runs
#   ROUNDS=3 bench/compare-janus.sh             # more rounds
#
# Installs Debian's janus when it is missing. Everything it starts runs in a PID namespace and
# two network namespaces of its own, the servers' and the load test's, joined by a veth pair
# (Janus gathers no candidates on loopback, so it needs a real interface): when the script ends,
# however it ends, the kernel stops every process started there and removes the namespaces and
# the veth pair with them, and a trap removes the temporary folder.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."
source bench/lib.sh

all_scenarios=(room-of-eight broadcast-100)
rounds=${ROUNDS:-2}
servers_ip=10.99.0.1
loadtest_ip=10.99.0.2
servers_interface=swy-servers
loadtest_interface=swy-loadtest
switchyard_port=8080
janus_port=8188

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
say() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Inside the namespaces: start each server, load it, stop it; one JSON report per run.
# ---------------------------------------------------------------------------------------------
if [ "${1:-}" = "--inside" ]; then
  work=$2
  shift 2
  scenarios=("$@")
  ip link set lo up
  # A process of its own holds the servers' network namespace; the veth pair joins it to this
  # one, where the load test runs.
  unshare --net sleep infinity &
  holder=$!
  for _ in $(seq 100); do
    [ "$(readlink /proc/$holder/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
    sleep 0.01
  done
  servers_namespace=(nsenter --net="/proc/$holder/ns/net")
  in_servers() { "${servers_namespace[@]}" "$@"; }
  ip link add "$loadtest_interface" type veth peer name "$servers_interface"
  ip link set "$servers_interface" netns "$holder"
  in_servers ip link set lo up
  in_servers ip addr add "$servers_ip/30" dev "$servers_interface"
  in_servers ip link set "$servers_interface" up
  ip addr add "$loadtest_ip/30" dev "$loadtest_interface"
  ip link set "$loadtest_interface" up

  bench/janus-config.sh "$work/janus" "$servers_ip" "$janus_port"

  server_pid=""
  stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -INT "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  }
  trap stop_server EXIT

  start_server() { # NAME LOG
    case "$1" in
      # nsenter becomes the server (it execs it), so $! is the server's own process id.
      switchyard)
        # Every participant connects from the load test's one address: no cap per address.
        "${servers_namespace[@]}" target/release/switchyard --http "$servers_ip:$switchyard_port" \
          --media-ip "$servers_ip" --connections-per-ip 0 >"$2" 2>&1 &
        port=$switchyard_port url="ws://$servers_ip:$switchyard_port/ws" ;;
      janus)
        "${servers_namespace[@]}" janus --configs-folder "$work/janus" --config "$work/janus/janus.jcfg" \
          --ice-enforce-list "$servers_interface" --disable-colors >"$2" 2>&1 &
        port=$janus_port url="ws://$servers_ip:$janus_port" ;;
    esac
    server_pid=$!
    wait_for_server "$servers_ip" "$port" "$server_pid" "$2"
  }

  for scenario in "${scenarios[@]}"; do
    for round in $(seq "$rounds"); do
      for server in switchyard janus; do
        run="$work/$scenario.$round.$server"
        say "== $scenario, round $round/$rounds: $server"
        start_server "$server" "$run.log"
        status=0
        target/release/loadtest --target "$server" --url "$url" --media-ip "$loadtest_ip" \
          --scenario "$scenario" --server-pid "$server_pid" --quiet \
          --json "$run.json" >"$run.txt" || status=$?
        stop_server
        if [ "$status" -ne 0 ]; then
          cat "$run.txt" >&2
          say "the run against $server failed; the server's log is in $run.log"
          exit 1
        fi
        grep -E '^(joined|received)' "$run.txt" | sed 's/^/   /' >&2
      done
    done
  done
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Outside: install, build, measure the floor, run the above in its namespaces, write the table.
# ---------------------------------------------------------------------------------------------
write_docs=1
keep=""
from=""
scenarios=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --no-docs) write_docs=0 ;;
    --keep) keep=${2:?--keep needs a folder}; shift ;;
    --from) from=${2:?--from needs a folder}; shift ;;
    -*) say "usage: $0 [--no-docs] [--keep FOLDER | --from FOLDER] [SCENARIO...]"; exit 2 ;;
    *) scenarios+=("$1"); write_docs=0 ;;
  esac
  shift
done
[ "${#scenarios[@]}" -gt 0 ] || scenarios=("${all_scenarios[@]}")

if [ -n "$from" ]; then
  # The tables again from runs kept earlier (--keep), with the conditions they ran in.
  work=$from
  if [ ! -f "$work/conditions" ] || [ ! -f "$work/floors" ]; then
    say "$work holds no kept runs (no conditions or floors file)"
    exit 2
  fi
  # shellcheck source=/dev/null
  . "$work/conditions"
  say "== building the load test (release)"
  cargo build --release --quiet -p loadtest --bins
else
  started=$(date +%s)
  if ! command -v janus >/dev/null; then
    say "== installing Janus (Debian's janus package)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y janus
    # The package starts its own service with the demo configuration; this script only needs
    # the binary, and leaves nothing running.
    if command -v systemctl >/dev/null && systemctl is-active --quiet janus 2>/dev/null; then
      as_root systemctl disable --now janus
    fi
  fi
  janus_version=$({ janus --help 2>&1 || true; } | sed -n 's/^Janus version: [0-9]* (\(.*\))$/\1/p' | head -1)

  work=$(mktemp -d)
  inside=""
  cleanup() {
    # unshare ignores SIGTERM while it waits; killed, it kills the namespaces' first process
    # (--kill-child), and with it every process in them.
    if [ -n "$inside" ]; then kill -KILL "$inside" 2>/dev/null || true; wait "$inside" 2>/dev/null || true; fi
    if [ -n "$keep" ]; then mkdir -p "$keep" && cp -r "$work"/. "$keep"/ && say "runs kept in $keep"; fi
    rm -rf "$work"
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM

  say "== building (release)"
  cargo build --release --quiet -p switchyard -p loadtest --bins

  say "== the floor under forwarding (cargo bench --bench forward_floor)"
  cargo bench --quiet --bench forward_floor -- --noplot 'forward_floor(_batched)?/' >/dev/null 2>&1
  # criterion's mean per iteration; a batched iteration is 32 packets.
  for group in forward_floor:1:floors forward_floor_batched:32:batched_floors; do
    IFS=: read -r name packets file <<<"$group"
    for estimates in "target/criterion/$name"/*/new/estimates.json; do
      profile=$(basename "$(dirname "$(dirname "$estimates")")")
      nanoseconds=$(sed -E 's/.*"mean":\{"confidence_interval":\{[^}]*\},"point_estimate":([0-9.eE+-]+).*/\1/' "$estimates")
      awk -v p="$profile" -v ns="$nanoseconds" -v n="$packets" 'BEGIN { print p, ns / n }' >>"$work/$file"
    done
  done

  namespaces=(unshare --net --pid --fork --kill-child --mount-proc)
  [ "$(id -u)" -eq 0 ] || namespaces=(unshare --map-root-user --net --pid --fork --kill-child --mount-proc)
  "${namespaces[@]}" bash "$self" --inside "$work" "${scenarios[@]}" &
  inside=$!
  wait "$inside"
  inside=""

  machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(free -g | awk '/^Mem:/ {print $2}') GiB, Linux $(uname -r)"
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  minutes=$(( ($(date +%s) - started + 59) / 60 ))
  measured_on=$(date -u +%Y-%m-%d)
  commit=$(git rev-parse --short HEAD)
  if ! git diff --quiet HEAD -- src loadtest benches Cargo.toml Cargo.lock 2>/dev/null; then
    commit="$commit with local changes"
  fi
  for variable in janus_version machine load minutes measured_on commit rounds; do
    printf '%s=%q\n' "$variable" "${!variable}"
  done >"$work/conditions"
fi

floors=()
floor_lines=()
while read -r profile nanoseconds; do
  batched=$(awk -v p="$profile" '$1 == p { print $2 }' "$work/batched_floors" 2>/dev/null || true)
  floors+=(--floor "$profile=$nanoseconds")
  [ -n "$batched" ] && floors+=(--batched-floor "$profile=$batched")
  floor_lines+=("$(awk -v p="$profile" -v ns="$nanoseconds" -v b="${batched:-0}" 'BEGIN {
    if (b > 0) printf "| %s | %.2f µs | %.0f | %.2f µs | %.0f |", p, ns / 1000, 1e9 / ns, b / 1000, 1e9 / b
    else printf "| %s | %.2f µs | %.0f | n/a | n/a |", p, ns / 1000, 1e9 / ns }')")
done <"$work/floors"

tables=""
status=0
for scenario in "${scenarios[@]}"; do
  reports=()
  for round in $(seq "$rounds"); do
    reports+=("$work/$scenario.$round.switchyard.json" "$work/$scenario.$round.janus.json")
  done
  table=$(target/release/loadtest compare "${floors[@]}" "${reports[@]}") || status=1
  case "$scenario" in
    room-of-eight) title="One room of 8 participants, all publishing 1.5 Mbit/s video and audio" ;;
    broadcast-100) title="One publisher (1.5 Mbit/s video and audio), 100 subscribers" ;;
    *) title=$scenario ;;
  esac
  tables+="### $title"$'\n\n'"Scenario \`$scenario\` in [loadtest/scenarios.toml](../loadtest/scenarios.toml)."$'\n\n'"$table"$'\n\n'
done

section=$(cat <<SECTION
## Switchyard vs Janus

Generated by \`bench/compare-janus.sh\` on $measured_on at commit \`$commit\`, in about
$minutes minutes. Machine: $machine; load average $load when the runs ended (the
load test's own participants run on the same two cores, so the last, largest scenario shows
there; work from anything else would show as noise in every figure). Janus $janus_version, Debian's package,
its VideoRoom plugin; Switchyard's release build.

\`\`\`sh
bench/compare-janus.sh
\`\`\`

Both servers run in one network namespace and the load test in another, joined by a veth pair;
each run starts a fresh server, and the runs alternate (Switchyard, Janus, Switchyard, Janus:
$rounds rounds). The load test is the same program with the same synthetic media and the same
measurements; only its signaling differs (\`--target janus\` speaks the VideoRoom API, see
[docs/architecture.md](architecture.md#the-load-test-and-janus)). "Forwarded packets" are the
packets the synthetic receivers got during the measurement window, counted the same way for
both servers; the server's CPU time and memory come from \`/proc\`. Per-packet cost pools the
runs (their CPU time over their packets, with the lowest and highest run); rates and
percentiles are the mean of the runs; the ratio column divides Switchyard's figure by Janus's
(below 1: Switchyard uses less, or is lower).

$tables### The floor under forwarding

\`cargo bench --bench forward_floor\`: one 1,200-byte RTP packet numbered, serialized, protected
with SRTP and sent with one \`send_to\` on loopback, per protection profile; the time is the
sending thread's CPU time (criterion's mean). The batched floor does the same for 32
subscribers at once, each with its own SRTP context, and sends the 32 datagrams with one
\`sendmmsg\` (the server's own \`SendBatch\`), as a media worker does; its time is per packet.
Their inverses are the most packets one core could forward per CPU-second if a server did
nothing else; the share-of-the-floor rows above set each server's forwarded packets per
CPU-second against each floor for the profile it negotiated.

| SRTP profile | floor: time per packet | packets per CPU-second | batched floor: time per packet | packets per CPU-second |
|---|---|---|---|---|
$(printf '%s\n' "${floor_lines[@]}")
SECTION
)

printf '\n%s\n' "$section"
if [ "$status" -ne 0 ]; then
  say "some run did not measure everything (see above): the tables are not a fair comparison,"
  say "and docs/benchmarks.md is left as it was"
  exit "$status"
fi
if [ "$write_docs" -eq 1 ]; then
  # Each run's report as printed, next to the other raw results.
  rm -rf docs/benchmarks/janus
  mkdir -p docs/benchmarks/janus
  for scenario in "${scenarios[@]}"; do
    cp "$work/$scenario".*.txt docs/benchmarks/janus/
  done
  {
    echo '<!-- janus:begin -->'
    printf '%s\n' "$section"
    echo
    echo "Each run's report, as the load test printed it, is in \`docs/benchmarks/janus/\`."
    if [ -f bench/janus-reading.md ]; then
      echo
      cat bench/janus-reading.md
    fi
    echo '<!-- janus:end -->'
  } >"$work/section.md"
  # bench/loadtest-scenarios.sh keeps the section when it rewrites the rest of the file.
  write_section janus "$(cat "$work/section.md")"
fi
