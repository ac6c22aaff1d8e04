#!/usr/bin/env bash
# Writes a minimal Janus configuration into DIR: the VideoRoom plugin and the WebSocket
# transport and nothing else (every other plugin, transport, event handler and logger left
# out), the Janus API on IP:PORT only. Janus skips loopback interfaces when it gathers ICE
# candidates, so it is started with the interface to gather on:
#
#   bench/janus-config.sh DIR IP PORT
#   janus --configs-folder DIR --config DIR/janus.jcfg --ice-enforce-list INTERFACE
#
# Janus loads every library in its plugin and transport folders, so DIR gets folders of its own
# holding links to just the two it needs. Used by bench/compare-janus.sh and tests/janus.rs.
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 DIR IP PORT" >&2
  exit 2
fi
dir=$1 ip=$2 port=$3

# Where the distribution put Janus's libraries (Debian: /usr/lib/<triplet>/janus).
libraries=""
for candidate in /usr/lib/*/janus /usr/lib/janus /usr/local/lib/janus /opt/janus/lib/janus; do
  if [ -e "$candidate/plugins/libjanus_videoroom.so" ]; then
    libraries=$candidate
    break
  fi
done
if [ -z "$libraries" ]; then
  echo "$0: cannot find Janus's libjanus_videoroom.so (is the janus package installed?)" >&2
  exit 1
fi

mkdir -p "$dir/plugins" "$dir/transports" "$dir/events" "$dir/loggers"
ln -sf "$libraries/plugins/libjanus_videoroom.so" "$dir/plugins/"
ln -sf "$libraries/transports/libjanus_websockets.so" "$dir/transports/"

cat >"$dir/janus.jcfg" <<JCFG
general: {
	configs_folder = "$dir"
	plugins_folder = "$dir/plugins"
	transports_folder = "$dir/transports"
	events_folder = "$dir/events"
	loggers_folder = "$dir/loggers"
	# Janus's default: informational messages, no per-packet logging.
	debug_level = 4
	server_name = "switchyard-comparison"
}
certificates: {
}
media: {
}
nat: {
	# The load test never offers .local candidates.
	ignore_mdns = true
}
plugins: {
}
transports: {
}
loggers: {
}
events: {
	broadcast = false
}
JCFG

cat >"$dir/janus.plugin.videoroom.jcfg" <<JCFG
# No rooms here: the load test creates its own.
general: {
}
JCFG

cat >"$dir/janus.transport.websockets.jcfg" <<JCFG
general: {
	json = "compact"
	ws = true
	ws_ip = "$ip"
	ws_port = $port
	wss = false
}
admin: {
	admin_ws = false
	admin_wss = false
}
JCFG
