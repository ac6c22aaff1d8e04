#!/usr/bin/env bash
# Runs every Switchyard test on a fresh machine: formatting, lints, unit and integration tests,
# the deployment files, then the browser client in real Chromium. It installs what it needs
# first (Rust components, Debian's chromium, janus, coturn, redis-server, docker-compose and
# caddy, the browser tests' npm packages), so it is also what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

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

# Everything that needs the network is installed before the browser tests cut it off.
step "Debian packages: chromium, janus, coturn, redis-server, openssl, docker-compose, caddy"
# chromium drives the browser tests; janus is what the load test's Janus adapter is tested
# against (tests/janus.rs); coturn is the TURN server of the relay tests (and of
# tests/coturn_entrypoint.rs), openssl makes the certificate of the TURN-over-TLS one;
# redis-server is the Redis the nodes of the cluster tests share; docker-compose and caddy
# check the deployment files.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v janus >/dev/null || missing+=(janus)
[ -x /usr/bin/turnserver ] || missing+=(coturn)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v openssl >/dev/null || missing+=(openssl)
bare=() # installed without recommends: docker-compose would pull in a Docker engine
command -v docker-compose >/dev/null || bare+=(docker-compose)
command -v caddy >/dev/null || bare+=(caddy)
if [ "${#missing[@]}" -gt 0 ] || [ "${#bare[@]}" -gt 0 ]; then
  as_root apt-get update
  if [ "${#missing[@]}" -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  fi
  if [ "${#bare[@]}" -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${bare[@]}"
  fi
  # The janus package starts a service with its demo configuration; the tests start their own.
  if [[ " ${missing[*]} " == *" janus "* ]] && command -v systemctl >/dev/null &&
    systemctl is-active --quiet janus 2>/dev/null; then
    as_root systemctl disable --now janus
  fi
  # So does the redis-server package, on port 6379 (a systemd unit, or its init script on a
  # machine without systemd); the tests start their own Redis on ports of their own. Stopped
  # where it can be, and left alone where it cannot: it does not stand in their way.
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
      as_root systemctl disable --now redis-server || true
    elif [ -x /etc/init.d/redis-server ] && command -v service >/dev/null; then
      as_root service redis-server stop >/dev/null 2>&1 || true
    fi
  fi
fi
/usr/bin/chromium --version 2>/dev/null
janus --version 2>&1 | sed -n 1p || true
/usr/bin/turnserver --version 2>/dev/null || true
redis-server --version
docker-compose version --short
caddy version

step "browser test packages (npm ci)"
(cd tests/browser && npm ci --no-audit --no-fund)

status=0

step "deployment files: docker-compose config, caddy validate"
# The secrets .env.example leaves for the operator to make; compose refuses to run without them.
secret() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
TOKEN_KEY=$(secret) TURN_SECRET=$(secret) \
  docker-compose --env-file .env.example --file docker-compose.yml config --quiet || status=1
# With Prometheus and Grafana too; and with Redis and two nodes, behind Caddy's cluster site.
TOKEN_KEY=$(secret) TURN_SECRET=$(secret) \
  docker-compose --env-file .env.example --file docker-compose.yml --profile monitoring \
  config --quiet || status=1
TOKEN_KEY=$(secret) TURN_SECRET=$(secret) CADDYFILE=Caddyfile.cluster \
  docker-compose --env-file .env.example --file docker-compose.yml --profile cluster \
  config --quiet || status=1
for caddyfile in deploy/Caddyfile deploy/Caddyfile.cluster; do
  DOMAIN=meet.example.com caddy validate --adapter caddyfile --config "$caddyfile" \
    >"$logs/caddy" 2>&1 || { cat "$logs/caddy"; status=1; }
done
[ "$status" -eq 0 ] && echo "docker-compose.yml (alone, with --profile monitoring, with --profile cluster), deploy/Caddyfile and deploy/Caddyfile.cluster are valid"

step "unit and integration tests"
cargo test --workspace --all-targets 2>&1 | tee "$logs/rust" || status=1
cargo test --workspace --doc 2>&1 | tee -a "$logs/rust" || status=1

step "browser tests: the client in Chromium, in a network namespace holding only loopback"
# The server, and the load test whose HTML report one of them opens.
cargo build -p switchyard -p loadtest --bins
# A namespace of its own keeps every packet of the test on this machine, and leaves Chromium no
# other interface to send from. Unprivileged users get one inside a user namespace.
unshare_net=(unshare --net)
[ "$(id -u)" -eq 0 ] || unshare_net=(unshare --map-root-user --net)
"${unshare_net[@]}" bash -c '
  set -e
  ip link set lo up
  cd tests/browser
  exec node --test --test-concurrency=1 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$1"
' browser-tests "$logs/browser.tap" || status=1

# One closing line for the whole run.
rust=$(awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d %d", passed, failed }' "$logs/rust")
browser="0 0"
if [ -s "$logs/browser.tap" ]; then
  browser=$(awk '/^# pass / { passed = $3 } /^# fail / { failed = $3 } /^# cancelled / { failed += $3 } END { printf "%d %d", passed, failed }' "$logs/browser.tap")
fi
read -r rust_passed rust_failed <<<"$rust"
read -r browser_passed browser_failed <<<"$browser"
if [ "$status" -ne 0 ] && [ $((rust_failed + browser_failed)) -eq 0 ]; then
  browser_failed=1 # a runner that failed without reporting a test counts as one failure
fi
printf '\nrust: %d passed, %d failed\n' "$rust_passed" "$rust_failed"
printf 'browser: %d passed, %d failed\n' "$browser_passed" "$browser_failed"
printf 'all: %d passed, %d failed\n' $((rust_passed + browser_passed)) $((rust_failed + browser_failed))
exit "$status"
