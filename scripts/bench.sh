#!/usr/bin/env bash
# The performance benchmark: mqtls side by side with the things operators compare it to, in one
# run, all in front of (or being) a local Mosquitto:
#   mqtls            mqtls (workers: 1) -> plaintext Mosquitto, with its admin listener on and
#                    /metrics scraped every second (what a monitored proxy does)
#   mqtls-nometrics  the same binary without an admin listener: no traffic counting, no scrapes
#                    (the cost of metrics; --no-nometrics skips it)
#   mqtls-framed     the same binary with limits.packet_framing: always (every client packet cut
#                    and checked by the codec): the cost of the framed path (--no-framed skips it)
#   mqtls-before     another mqtls binary given with --baseline BIN (e.g. a build of the previous
#                    commit), same settings: before/after ratios from one run
#   mosquitto-tls    Mosquitto's own mutual-TLS listener (use_identity_as_username), a second
#                    Mosquitto process
#   haproxy          HAProxy 2.6 in TCP mode terminating mutual TLS -> the plaintext Mosquitto
#                    (installed with apt-get if missing; skipped if that fails)
#   mosquitto-plain  the plaintext Mosquitto direct, a baseline for message throughput
# mqtls_bench (tests/bench) measures one target at a time and prints rates, latencies and server
# CPU per operation with ratios. Servers (and the broker) run on CPU 0, the load generator on
# CPU 1. Exits non-zero if any target fails to work.
#
#   scripts/bench.sh [--quick] [--duration SEC] [--warmup SEC] [--no-haproxy] [--no-framed]
#                    [--no-nometrics] [--baseline BIN] [-- BENCH_ARGS]
#     --quick        1.5 s per run instead of 5 s (about a minute in all)
#     BENCH_ARGS     passed to mqtls_bench, e.g. --scenarios connect-tls13,publish-64
#   MQTLS_BENCH_BUILD=DIR   build directory (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
command_line="$0 $*"
build=$(realpath -m -- "${MQTLS_BENCH_BUILD:-build}")
duration=5
warmup=1
want_haproxy=1
want_framed=1
want_nometrics=1
baseline=""
bench_args=()

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) duration=1.5; warmup=0.5 ;;
    --duration) duration=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --no-haproxy) want_haproxy=0 ;;
    --no-framed) want_framed=0 ;;
    --no-nometrics) want_nometrics=0 ;;
    --baseline) baseline=$(realpath -- "$2"); shift ;;
    --) shift; bench_args=("$@"); break ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\n== %s\n' "$*"; }

work=$(mktemp -d /tmp/mqtls-bench.XXXXXX)
pids=()
helper_pids=()  # not servers: their exit is not a failure
cleanup() {
  trap - INT TERM EXIT
  for pid in "${helper_pids[@]}" "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A free loopback port, distinct from those handed out before.
taken=" "
free_port() {
  local port=$((20000 + RANDOM % 20000))
  while ! port_free "$port" || [[ "$taken" == *" $port "* ]]; do port=$((port + 1)); done
  taken+="$port "
  echo "$port"
}

# Waits until PID listens on PORT; fails with the log if it exits or takes too long.
wait_listening() {
  local name=$1 pid=$2 port=$3 log=$4
  for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "bench.sh: $name exited at start:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    port_free "$port" || return 0
    sleep 0.05
  done
  echo "bench.sh: $name does not listen on port $port" >&2
  exit 1
}

# Server side on CPU 0, load generator on CPU 1, when there are two CPUs to pin to.
server_pin=()
client_pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_pin=(taskset -c 0)
  client_pin=(taskset -c 1)
fi

say "environment"
echo "command:   $command_line"
echo "date:      $(date -u '+%Y-%m-%d %H:%M:%S UTC'), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "cpu:       $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores"
echo "kernel:    $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "openssl:   $(openssl version)"
echo "mosquitto: $(mosquitto -h 2>/dev/null | head -n 1 || true)"
if [ ${#server_pin[@]} -gt 0 ]; then
  echo "pinning:   servers (mqtls, Mosquitto, HAProxy) on CPU 0 - the broker shares CPU 0 with"
  echo "           every candidate alike; load generator on CPU 1"
else
  echo "pinning:   none (needs taskset and two CPUs); numbers include scheduler noise"
fi

say "build"
cmake -S "$root" -B "$build" -DMQTLS_TESTS=ON >"$work/cmake.log" 2>&1 ||
  { tail -n 30 "$work/cmake.log" >&2; exit 1; }
cmake --build "$build" --target mqtls mqtls_bench >"$work/build.log" 2>&1 ||
  { tail -n 30 "$work/build.log" >&2; exit 1; }
mqtls="$build/proxy/mqtls"
bench="$build/tests/bench/mqtls_bench"
echo "mqtls:     $("$mqtls" --version)"

say "PKI"
certs="$build/certs"
bash certs/gen.sh "$certs"

say "servers"
broker_port=$(free_port)
cat >"$work/mosquitto-plain.conf" <<CONF
listener $broker_port 127.0.0.1
allow_anonymous true
log_dest stderr
log_type error
max_queued_messages 100000
set_tcp_nodelay true
CONF
"${server_pin[@]}" mosquitto -c "$work/mosquitto-plain.conf" 2>"$work/mosquitto-plain.log" &
broker_pid=$!
pids+=("$broker_pid")
wait_listening mosquitto "$broker_pid" "$broker_port" "$work/mosquitto-plain.log"
echo "mosquitto (plaintext broker)  127.0.0.1:$broker_port  pid $broker_pid"

# start_mqtls NAME BINARY [LIMITS_LINE [ADMIN_PORT]]: an mqtls (workers: 1) in front of the
# plaintext broker, with an admin listener on ADMIN_PORT if given; sets started_port and
# started_pid.
start_mqtls() {
  local name=$1 binary=$2 extra=${3:-} admin_port=${4:-}
  local admin=""
  if [ -n "$admin_port" ]; then
    admin="admin: {listen: \"127.0.0.1:$admin_port\", broker_check: on_demand}"
  fi
  started_port=$(free_port)
  cat >"$work/$name.yaml" <<YAML
$admin
workers: 1
log:
  level: warn
listeners:
  - name: bench
    bind: 127.0.0.1
    port: $started_port
    tls:
      cert: $certs/server-ec.pem
      key: $certs/server-ec.key
      client_ca: $certs/ca-bundle.pem
      client_auth: required
upstream:
  host: 127.0.0.1
  port: $broker_port
limits:
  drain_timeout: 1s
  $extra
YAML
  "$binary" --check --config "$work/$name.yaml"
  "${server_pin[@]}" "$binary" --config "$work/$name.yaml" 2>"$work/$name.log" &
  started_pid=$!
  pids+=("$started_pid")
  wait_listening "$name" "$started_pid" "$started_port" "$work/$name.log"
  printf '%-29s 127.0.0.1:%s  pid %s\n' "$name -> broker" "$started_port" "$started_pid"
}

admin_port=$(free_port)
start_mqtls mqtls "$mqtls" "" "$admin_port"
mqtls_port=$started_port
mqtls_pid=$started_pid
# A scrape every second, from the load generator's core, for as long as the benchmark runs.
"${client_pin[@]}" bash -c 'while sleep 1; do
    exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 0
    printf "GET /metrics HTTP/1.0\r\n\r\n" >&3
    cat <&3 >/dev/null
    exec 3>&-
  done' "$admin_port" &
helper_pids+=($!)
extra_targets=()
if [ "$want_nometrics" = 1 ]; then
  start_mqtls mqtls-nometrics "$mqtls"
  extra_targets+=(--target "mqtls-nometrics=tls:$started_port:$started_pid,$broker_pid")
fi
if [ "$want_framed" = 1 ]; then
  start_mqtls mqtls-framed "$mqtls" "packet_framing: always"
  extra_targets+=(--target "mqtls-framed=tls:$started_port:$started_pid,$broker_pid")
fi
if [ -n "$baseline" ]; then
  start_mqtls mqtls-before "$baseline"
  extra_targets+=(--target "mqtls-before=tls:$started_port:$started_pid,$broker_pid")
fi

mosq_tls_port=$(free_port)
# "user": when started as root, keep root rather than switch to "mosquitto", which cannot read the
# keys in the build tree.
cat >"$work/mosquitto-tls.conf" <<CONF
user $(id -un)
listener $mosq_tls_port 127.0.0.1
cafile $certs/ca-bundle.pem
certfile $certs/server-ec.pem
keyfile $certs/server-ec.key
require_certificate true
use_identity_as_username true
allow_anonymous true
log_dest stderr
log_type error
max_queued_messages 100000
set_tcp_nodelay true
CONF
"${server_pin[@]}" mosquitto -c "$work/mosquitto-tls.conf" 2>"$work/mosquitto-tls.log" &
mosq_tls_pid=$!
pids+=("$mosq_tls_pid")
wait_listening mosquitto-tls "$mosq_tls_pid" "$mosq_tls_port" "$work/mosquitto-tls.log"
echo "mosquitto TLS listener        127.0.0.1:$mosq_tls_port  pid $mosq_tls_pid"

targets=(--target "mqtls=tls:$mqtls_port:$mqtls_pid,$broker_pid"
         "${extra_targets[@]}"
         --target "mosquitto-tls=tls:$mosq_tls_port:$mosq_tls_pid")

if [ "$want_haproxy" = 1 ] && ! command -v haproxy >/dev/null && [ "$(id -u)" = 0 ] &&
    command -v apt-get >/dev/null; then
  echo "installing haproxy (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >"$work/apt.log" 2>&1 ||
    { echo "apt-get install haproxy failed:"; tail -n 3 "$work/apt.log"; }
fi
if [ "$want_haproxy" = 1 ] && command -v haproxy >/dev/null; then
  haproxy_port=$(free_port)
  cat "$certs/server-ec.pem" "$certs/server-ec.key" >"$work/haproxy.pem"
  cat >"$work/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend mqtts
  bind 127.0.0.1:$haproxy_port ssl crt $work/haproxy.pem ca-file $certs/ca-bundle.pem verify required
  default_backend broker
backend broker
  server mosquitto 127.0.0.1:$broker_port
CFG
  "${server_pin[@]}" haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
  haproxy_pid=$!
  pids+=("$haproxy_pid")
  wait_listening haproxy "$haproxy_pid" "$haproxy_port" "$work/haproxy.log"
  echo "haproxy -> broker             127.0.0.1:$haproxy_port  pid $haproxy_pid  ($(haproxy -v | head -n 1))"
  targets+=(--target "haproxy=tls:$haproxy_port:$haproxy_pid,$broker_pid")
else
  echo "haproxy: skipped (not installed and not installable, or --no-haproxy)"
fi
targets+=(--target "mosquitto-plain=plain:$broker_port:$broker_pid")

say "benchmark"
cat <<'NOTES'
notes: mosquitto-tls does TLS and brokering in one process; mqtls and haproxy add a loopback hop
       to the plaintext broker, whose CPU counts in their "total" columns. haproxy only terminates
       TLS (no CONNECT rewrite). Both Mosquittos run with set_tcp_nodelay true: with the default
       (Nagle on), Mosquitto's CONNACK after a TLS 1.3 session ticket waits ~40 ms for an ACK.
       Rates vary with other load on this machine; CPU per operation varies less.
NOTES
bench_cmd=("${client_pin[@]}" "$bench" "${targets[@]}"
           --ca "$certs/ca-bundle.pem" --cert "$certs/client.pem" --key "$certs/client.key"
           --sub-cert "$certs/client2.pem" --sub-key "$certs/client2.key"
           --duration "$duration" --warmup "$warmup" "${bench_args[@]}")
echo "${bench_cmd[*]}"
status=0
"${bench_cmd[@]}" || status=$?

for pid in "${pids[@]}"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "bench.sh: server process $pid died during the benchmark" >&2
    status=1
  fi
done
for log in "$work"/mqtls*.log; do
  if [ -s "$log" ]; then
    echo "$(basename "$log" .log) logged $(wc -l <"$log") warning/error line(s); the last ones:"
    tail -n 5 "$log"
  fi
done
exit "$status"
