#!/usr/bin/env bash
# Run a tailgate cluster on loopback: N gateways and one agent, as processes of a given tailgate binary.
# Used by the demo and the perf scenarios; see deploy/README.md "Local cluster".
#
#   deploy/local/run-local.sh [options] TAILGATE_BIN
#
#   -n N              number of gateways (default 3, at most 99)
#   --backend ADDR    where gateways export sampled traces (default 127.0.0.1:24317, e.g. the perf sink)
#   --dir DIR         run directory for configs, logs and processes.tsv (default: a new mktemp -d)
#   --validate-only   render the configs, run `TAILGATE_BIN validate --config F` on each, and exit
#   PORT_OFFSET=K     (environment) add K to every listen port, to run beside another cluster
#
# Ports (before PORT_OFFSET): agent OTLP gRPC 4317, OTLP HTTP 4318, health 13133, metrics 8888;
# gateway i (0-based): OTLP gRPC 14317+i, health 14133+i, metrics 18800+i, spanmetrics 18900+i.
#
# It validates every config first and stops with tailgate's own message if one is rejected. Then it
# starts the gateways, waits for their health endpoints, starts the agent, writes DIR/processes.tsv
# (name, pid, ports, config, log) and DIR/ready, and waits. Ctrl-C, SIGTERM or any process exiting stops
# everything it started: agent first (so it flushes to the gateways), then the gateways, each with
# SIGTERM and up to GRACE_SECONDS (default 20) before SIGKILL.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
n=3
backend=127.0.0.1:24317
run_dir=
validate_only=0
bin=
offset=${PORT_OFFSET:-0}
grace=${GRACE_SECONDS:-20}
startup_timeout=${STARTUP_TIMEOUT_SECONDS:-30}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
  case $1 in
    -n) n=${2:?-n needs a number}; shift 2 ;;
    --backend) backend=${2:?--backend needs HOST:PORT}; shift 2 ;;
    --dir) run_dir=${2:?--dir needs a path}; shift 2 ;;
    --validate-only) validate_only=1; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "run-local: unknown option $1" >&2; usage ;;
    *) [ -z "$bin" ] || { echo "run-local: one binary only" >&2; usage; }; bin=$1; shift ;;
  esac
done
[ -n "$bin" ] || { echo "run-local: give the tailgate binary path" >&2; usage; }
[ -x "$bin" ] || { echo "run-local: $bin is not an executable file" >&2; exit 2; }
case $n in ''|*[!0-9]*) echo "run-local: -n wants a number" >&2; exit 2 ;; esac
if [ "$n" -lt 1 ] || [ "$n" -gt 99 ]; then echo "run-local: -n must be 1..99" >&2; exit 2; fi
case $offset in ''|*[!0-9]*) echo "run-local: PORT_OFFSET wants a number" >&2; exit 2 ;; esac
if [ $((18900 + 98 + offset)) -gt 65535 ]; then echo "run-local: PORT_OFFSET too large" >&2; exit 2; fi
[ -n "$run_dir" ] || run_dir=$(mktemp -d "${TMPDIR:-/tmp}/tailgate-local.XXXXXX")
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)
rm -f "$run_dir/ready" "$run_dir/processes.tsv"

# === render configs ===
# The shipped files are valid configs for gateway 0 / 3 gateways; every instance-specific value is a
# literal that appears exactly once, so plain substitution is enough and needs no YAML tool.
port() { echo $(($1 + offset)); }
gateway_grpc() { port $((14317 + $1)); }

render_gateway() { # $1 = ordinal
  local i=$1
  sed -e "s/127\.0\.0\.1:14317\"/127.0.0.1:$(gateway_grpc "$i")\"/" \
      -e "s/127\.0\.0\.1:14133\"/127.0.0.1:$(port $((14133 + i)))\"/" \
      -e "s/127\.0\.0\.1:18800\"/127.0.0.1:$(port $((18800 + i)))\"/" \
      -e "s/127\.0\.0\.1:18900\"/127.0.0.1:$(port $((18900 + i)))\"/" \
      -e "s/\"127\.0\.0\.1:24317\"/\"$backend\"/" \
      "$here/gateway.yaml" > "$run_dir/gateway-$i.yaml"
}

render_agent() {
  local list="" i
  for ((i = 0; i < n; i++)); do list+="${list:+, }\"127.0.0.1:$(gateway_grpc "$i")\""; done
  sed -e "s/^\( *hostnames:\).*/\1 [$list]/" \
      -e "s/127\.0\.0\.1:4317\"/127.0.0.1:$(port 4317)\"/" \
      -e "s/127\.0\.0\.1:4318\"/127.0.0.1:$(port 4318)\"/" \
      -e "s/127\.0\.0\.1:13133\"/127.0.0.1:$(port 13133)\"/" \
      -e "s/127\.0\.0\.1:8888\"/127.0.0.1:$(port 8888)\"/" \
      "$here/agent.yaml" > "$run_dir/agent.yaml"
}

configs=()
for ((i = 0; i < n; i++)); do render_gateway "$i"; configs+=("$run_dir/gateway-$i.yaml"); done
render_agent
configs+=("$run_dir/agent.yaml")

# === validate: tailgate's own message when a config is rejected ===
for cfg in "${configs[@]}"; do
  if ! out=$("$bin" validate --config "$cfg" 2>&1); then
    echo "run-local: tailgate rejected $cfg:" >&2
    printf '%s\n' "$out" | sed 's/^/  | /' >&2
    exit 3
  fi
done
echo "run-local: ${#configs[@]} configs valid in $run_dir"
[ "$validate_only" = 0 ] || exit 0

# === run ===
names=() pids=()

# shellcheck disable=SC2329  # invoked by the EXIT trap
stop_all() {
  trap - EXIT INT TERM
  local k pid deadline
  # Reverse start order: the agent first, so it can flush its batches to gateways that still listen.
  for ((k = ${#pids[@]} - 1; k >= 0; k--)); do
    pid=${pids[k]}
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "run-local: ${names[k]} (pid $pid) still running after ${grace}s, killing" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  rm -f "$run_dir/ready"
  [ ${#pids[@]} -eq 0 ] || echo "run-local: stopped ${#pids[@]} processes; logs in $run_dir"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# GET / on the health endpoint with bash's /dev/tcp (no curl needed); true on an HTTP 200.
healthy() {
  local status
  { exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&9
  IFS= read -r -t 2 status <&9 || status=
  exec 9>&-
  case $status in "HTTP/"*" 200"*) return 0 ;; *) return 1 ;; esac
}

start() { # $1 name, $2 config, $3 ports for the table
  local name=$1 cfg=$2 log="$run_dir/$1.log"
  "$bin" --config="$cfg" >"$log" 2>&1 &
  names+=("$name"); pids+=($!)
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$!" "$3" "$cfg" "$log" >> "$run_dir/processes.tsv"
}

wait_healthy() { # $1 name, $2 pid, $3 health port
  local deadline=$((SECONDS + startup_timeout))
  until healthy "$3"; do
    if ! kill -0 "$2" 2>/dev/null; then
      echo "run-local: $1 exited during startup; its log:" >&2
      tail -n 30 "$run_dir/$1.log" | sed 's/^/  | /' >&2
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "run-local: $1 not healthy on :$3 after ${startup_timeout}s" >&2
      exit 1
    fi
    sleep 0.1
  done
}

printf 'name\tpid\tports\tconfig\tlog\n' > "$run_dir/processes.tsv"
for ((i = 0; i < n; i++)); do
  start "gateway-$i" "$run_dir/gateway-$i.yaml" \
    "grpc=$(gateway_grpc "$i") health=$(port $((14133 + i))) metrics=$(port $((18800 + i))) spanmetrics=$(port $((18900 + i)))"
done
for ((i = 0; i < n; i++)); do wait_healthy "gateway-$i" "${pids[i]}" "$(port $((14133 + i)))"; done
start agent "$run_dir/agent.yaml" \
  "grpc=$(port 4317) http=$(port 4318) health=$(port 13133) metrics=$(port 8888)"
wait_healthy agent "${pids[n]}" "$(port 13133)"

column -t -s $'\t' "$run_dir/processes.tsv" 2>/dev/null || cat "$run_dir/processes.tsv"
echo "run-local: ready; send OTLP to 127.0.0.1:$(port 4317) (gRPC) or :$(port 4318) (HTTP); backend $backend; Ctrl-C stops"
date -u +%FT%TZ > "$run_dir/ready"

# Any process exiting on its own ends the cluster (a half cluster would skew a perf run).
set +e
wait -n "${pids[@]}"
rc=$?
set -e
for ((k = 0; k < ${#pids[@]}; k++)); do
  if ! kill -0 "${pids[k]}" 2>/dev/null; then
    echo "run-local: ${names[k]} exited (status $rc); stopping the others" >&2
    break
  fi
done
exit 1
