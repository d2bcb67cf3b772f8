#!/usr/bin/env bash
# Paired before/after: two mqtls binaries measured at the same moment on the same core, so that
# the machine's speed, which can change by half between minutes on a shared VM, moves both alike.
# Both run with workers: 1 on CPU 0 (with the plaintext Mosquitto they share), each loaded by its
# own mqtls-bench on CPU 1 at the same time; a round runs every scenario once, and the two swap
# ports and start order from round to round. Prints each round's server CPU per operation (from
# /proc/PID/stat, as mqtls-bench reports it) and, per scenario, the median of AFTER/BEFORE:
# below 1, AFTER costs less. Rates mean little here (the two proxies share a core); CPU per
# operation is the figure. Use it for a change too small for bench.sh's rounds to see.
# Either side may instead be one of the peers bench.sh compares with, started the same way:
# haproxy, haproxy-tuned (no-tls-tickets) or mosquitto-tls (a second Mosquitto with its own
# mutual-TLS listener): "scripts/ab.sh haproxy-tuned build/proxy/mqtls" gives mqtls's CPU per
# operation over HAProxy's, both measured at the same moment.
#
#   scripts/ab.sh [--rounds N] [--duration SEC] [--warmup SEC] [--scenarios a,b,...] BEFORE AFTER
#     BEFORE, AFTER   two mqtls binaries (e.g. builds of two commits), or a peer's name
#     --rounds N      rounds (default 6)
#     --scenarios     mqtls-bench scenarios (default connect-tls13,resume-tls13); the handshake
#                     and publish scenarios, not idle
#   MQTLS_BENCH_BUILD=DIR   build directory of mqtls-bench and the test PKI (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=$(realpath -m -- "${MQTLS_BENCH_BUILD:-build}")
rounds=6
duration=4
warmup=1
scenarios=connect-tls13,resume-tls13
binaries=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift ;;
    --duration) duration=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --scenarios) scenarios=$2; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "ab.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    haproxy|haproxy-tuned|mosquitto-tls) binaries+=("$1") ;;
    *) binaries+=("$(realpath -- "$1")") ;;
  esac
  shift
done
[ ${#binaries[@]} -eq 2 ] || { echo "ab.sh: give two mqtls binaries, BEFORE and AFTER (see --help)" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "ab.sh: --rounds needs a positive number" >&2; exit 2; }
if [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; then
  echo "ab.sh: needs two CPUs and taskset (servers on CPU 0, generators on CPU 1)" >&2
  exit 2
fi

work=$(mktemp -d /tmp/mqtls-ab.XXXXXX)
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/bench_lib.sh
source scripts/bench_lib.sh

cmake -S "$root" -B "$build" -DMQTLS_TESTS=ON >"$work/cmake.log" 2>&1 || { tail -n 30 "$work/cmake.log" >&2; exit 1; }
cmake --build "$build" --target mqtls-bench >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; exit 1; }
bash certs/gen.sh "$build/certs" >/dev/null
certs="$build/certs"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

broker_port=$(free_port)
{ echo "listener $broker_port 127.0.0.1"; mosquitto_common_config; } >"$work/broker.conf"
taskset -c 0 mosquitto -c "$work/broker.conf" 2>"$work/broker.log" &
pids+=($!)
wait_listening mosquitto "$!" "$broker_port" "$work/broker.log"

ports=("$(free_port)" "$(free_port)")
for side in "${binaries[@]}"; do
  case "$side" in
    haproxy|haproxy-tuned)
      ensure_haproxy || { echo "ab.sh: $side needs HAProxy, which is not installed" >&2; exit 2; }
      cat "$certs/server-ec.pem" "$certs/server-ec.key" >"$work/haproxy.pem" ;;
  esac
done
# start_proxy INDEX PORT: side INDEX (0 BEFORE, 1 AFTER) on PORT, pinned to CPU 0; sets proxy_pid.
start_proxy() {
  local side=${binaries[$1]}
  case "$side" in
    haproxy|haproxy-tuned)
      local bind_extra=""
      [ "$side" = haproxy ] || bind_extra=no-tls-tickets
      haproxy_target_config "$2" "$broker_port" "$certs" "$work/haproxy.pem" \
        $((($(ulimit -n) - 200) / 2 > 60000 ? 60000 : ($(ulimit -n) - 200) / 2)) "$bind_extra" \
        >"$work/proxy$1.cfg"
      taskset -c 0 haproxy -db -f "$work/proxy$1.cfg" >"$work/proxy$1.log" 2>&1 & ;;
    mosquitto-tls)
      mosquitto_tls_config "$2" "$certs" >"$work/proxy$1.conf"
      taskset -c 0 mosquitto -c "$work/proxy$1.conf" 2>"$work/proxy$1.log" & ;;
    *)
      mqtls_target_config "$2" "$broker_port" "$certs" 1 >"$work/proxy$1.yaml"
      taskset -c 0 "$side" --config "$work/proxy$1.yaml" 2>"$work/proxy$1.log" & ;;
  esac
  proxy_pid=$!
  pids+=("$proxy_pid")
  wait_listening "$side" "$proxy_pid" "$2" "$work/proxy$1.log"
}

# version_of SIDE: the first line of a side's version.
version_of() {
  case "$1" in
    haproxy|haproxy-tuned) haproxy -v | head -n 1 ;;
    mosquitto-tls) mosquitto -h 2>/dev/null | head -n 1 ;;
    *) "$1" --version 2>/dev/null | head -n 1 ;;
  esac
}

cpu_of() { grep -o 'CPU [0-9.]* us/op' "$1" | head -n 1 | awk '{ print $2 }'; }

echo "before: ${binaries[0]} ($(version_of "${binaries[0]}"))"
echo "after:  ${binaries[1]} ($(version_of "${binaries[1]}"))"
echo "$rounds rounds of ${duration} s per scenario, both at once on CPU 0; $(date -u '+%Y-%m-%d %H:%M UTC'), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
declare -A ratios
IFS=, read -r -a scenario_list <<<"$scenarios"
for round in $(seq "$rounds"); do
  swap=$((round % 2))  # odd rounds: AFTER gets the first port and its generator starts first
  proxy_pids=()
  for index in 0 1; do
    start_proxy "$index" "${ports[$(((index + swap) % 2))]}"
    proxy_pids+=("$proxy_pid")
  done
  for scenario in "${scenario_list[@]}"; do
    gen_pids=()
    for step in 0 1; do
      index=$(((step + swap) % 2))
      taskset -c 1 "$build/tests/bench/mqtls-bench" \
        --target "p$index=tls:${ports[$(((index + swap) % 2))]}:${proxy_pids[$index]}" \
        --cert "$certs/client.pem" --key "$certs/client.key" --scenarios "$scenario" \
        --duration "$duration" --warmup "$warmup" >"$work/gen$index.log" 2>&1 &
      gen_pids+=($!)
      pids+=($!)
    done
    for pid in "${gen_pids[@]}"; do
      wait "$pid" || { echo "ab.sh: a generator failed:" >&2; tail -n 20 "$work"/gen*.log >&2; exit 1; }
    done
    before=$(cpu_of "$work/gen0.log")
    after=$(cpu_of "$work/gen1.log")
    ratio=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.3f", a / b }')
    ratios[$scenario]+="$ratio "
    printf 'round %d  %-16s before %8s us/op  after %8s us/op  after/before %s\n' \
      "$round" "$scenario" "$before" "$after" "$ratio"
  done
  for pid in "${proxy_pids[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
  pids=("${pids[0]}")  # the broker; the proxies of this round are gone
done
echo
for scenario in "${scenario_list[@]}"; do
  # shellcheck disable=SC2086
  printf '%-16s after/before median %s (rounds: %s)\n' "$scenario" \
    "$(printf '%s\n' ${ratios[$scenario]} | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')" \
    "${ratios[$scenario]% }"
done
