# Shared by the bench scripts: `source "$(dirname "$0")/lib.sh"`.

# wait_for_server HOST PORT PID LOG: waits, 10 s at most, until the server started as PID
# accepts connections on HOST:PORT. Fails, with the server's LOG, when it does not.
wait_for_server() {
  local host=$1 port=$2 pid=$3 log=$4
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server did not start on $host:$port; its log:" >&2
  cat "$log" >&2
  return 1
}
