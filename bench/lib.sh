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

# write_section NAME TEXT: puts TEXT, which runs from `<!-- NAME:begin -->` to
# `<!-- NAME:end -->`, in place of that section of docs/benchmarks.md, or at its end the first
# time. Each bench script owns one such section; the others are left as they are.
write_section() {
  local name=$1 text=$2
  if grep -q "^<!-- $name:begin -->\$" docs/benchmarks.md; then
    python3 - "$name" "$text" <<'PYTHON'
import re, sys
name, text = sys.argv[1], sys.argv[2]
path = "docs/benchmarks.md"
old = open(path).read()
pattern = re.compile(f"<!-- {name}:begin -->.*?<!-- {name}:end -->", re.S)
open(path, "w").write(pattern.sub(lambda _: text, old))
PYTHON
  else
    printf '\n%s\n' "$text" >>docs/benchmarks.md
  fi
  echo "wrote the $name section of docs/benchmarks.md" >&2
}
