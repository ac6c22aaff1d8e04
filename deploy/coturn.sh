#!/bin/sh
# coturn's entrypoint in docker-compose.yml. It waits for the certificate Caddy obtains for the
# TURN name (TURN_TLS_CERT and TURN_TLS_KEY, in Caddy's storage, mounted read-only), starts
# coturn with it and with the arguments it is given, and has coturn read the certificate and key
# again every TURN_TLS_RELOAD_SECS (12 hours; coturn reloads them on SIGUSR2), so a certificate
# Caddy renews (a month before it expires) is in use long before the old one expires, with no
# restart. SIGTERM and SIGINT (docker stop) go on to coturn.
set -eu

: "${TURN_TLS_CERT:?the certificate coturn serves for TURN over TLS}"
: "${TURN_TLS_KEY:?its private key}"
reload_secs="${TURN_TLS_RELOAD_SECS:-43200}"

waited=0
until [ -s "$TURN_TLS_CERT" ] && [ -s "$TURN_TLS_KEY" ]; do
  if [ $((waited % 60)) -eq 0 ]; then
    echo "coturn.sh: waiting for Caddy's certificate $TURN_TLS_CERT (see docker compose logs caddy)" >&2
  fi
  sleep 5
  waited=$((waited + 5))
done

turnserver --cert="$TURN_TLS_CERT" --pkey="$TURN_TLS_KEY" "$@" &
coturn=$!
trap 'kill -TERM "$coturn" 2>/dev/null || true' TERM INT

(
  while sleep "$reload_secs"; do
    kill -USR2 "$coturn" 2>/dev/null || exit 0
  done
) &
reloader=$!

status=0
wait "$coturn" || status=$?
# A trapped signal ends the first wait early: then wait for coturn itself to finish.
if kill -0 "$coturn" 2>/dev/null; then
  status=0
  wait "$coturn" || status=$?
fi
kill "$reloader" 2>/dev/null || true
exit "$status"
