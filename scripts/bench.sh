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
#   haproxy-tuned    the same with no-tls-tickets on its bind line (stateful resumption, as
#                    mqtls's default)
#   mosquitto-plain  the plaintext Mosquitto direct, a baseline for message throughput
#   mqtls-2w         with --scaling: mqtls with workers: 2, not pinned (see --scaling)
#   mqtls-before-2w  with --scaling and --baseline: the baseline binary with workers: 2
# With --paired, after the rounds: mqtls measured at the same moment as each peer (HAProxy,
# HAProxy tuned, Mosquitto's TLS listener) by scripts/ab.sh, both on CPU 0 each with its own
# generator on CPU 1: the CPU per operation of the TLS-terminating processes, whose ratio does not
# move with the VM's speed as ratios of runs seconds apart do.
# mqtls-bench (tests/bench) measures one target at a time and prints rates, latencies and server
# CPU per operation with ratios. Servers (and the broker) run on CPU 0, the load generator on
# CPU 1. Exits non-zero if any target fails to work.
# Before each round, mqtls-ceiling (tests/bench) runs the server side of the same handshakes
# in-process, on CPU 0, with the main mqtls target's configuration: the CPU per handshake that
# configuration allows; the end compares mqtls's own CPU per handshake+CONNACK with it, round by
# round (this machine's speed can change by half between minutes, so a ceiling measured once
# would compare two different machines).
# A round is one mqtls-bench run over every target; each round rotates the targets' order, and
# the end prints, per figure, mqtls's median value and the median of its per-round ratios to
# each other target (HAProxy first).
#
#   scripts/bench.sh [--quick] [--rounds N] [--duration SEC] [--warmup SEC] [--no-haproxy]
#                    [--no-framed] [--no-nometrics] [--workers N] [--baseline BIN] [--scaling]
#                    [--paired] [-- BENCH_ARGS]
#     --quick        1.5 s per run instead of 5 s (about a minute per round)
#     --rounds N     N rounds (default 1; 3 for figures worth comparing)
#     --workers N    the main mqtls target with N workers (default 1); with more than one it is
#                    not pinned, so compare its CPU per operation (the generator shares the cores)
#     --scaling      how handshakes scale across cores, where the load generator cannot have a
#                    core of its own: adds mqtls-2w (workers: 2, unpinned) and prints its CPU per
#                    handshake against the pinned one-worker mqtls (equal CPU per handshake means
#                    two cores give twice the rate); and runs mqtls-ceiling unpinned with one
#                    thread, with two threads as two workers (each its own OpenSSL library
#                    context, sharing the session store and verified-chain cache) and with two
#                    threads in one library context (as workers were before), printing the rate
#                    ratios
#     --paired       also the paired comparisons (above): as many rounds as --rounds, at least 3,
#                    over the scenarios asked for (idle excluded; by default the four handshakes
#                    and publish-64, publish-16k)
#     BENCH_ARGS     passed to mqtls-bench, e.g. --scenarios connect-tls13,publish-64
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
mqtls_workers=1
want_scaling=0
want_paired=0
baseline=""
rounds=1
bench_args=()

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) duration=1.5; warmup=0.5 ;;
    --duration) duration=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --no-haproxy) want_haproxy=0 ;;
    --no-framed) want_framed=0 ;;
    --no-nometrics) want_nometrics=0 ;;
    --workers) mqtls_workers=$2; shift ;;
    --scaling) want_scaling=1 ;;
    --paired) want_paired=1 ;;
    --baseline) baseline=$(realpath -- "$2"); shift ;;
    --) shift; bench_args=("$@"); break ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --rounds needs a positive number" >&2; exit 2; }

say() { printf '\n== %s\n' "$*"; }

work=$(mktemp -d /tmp/mqtls-bench.XXXXXX)
pids=()
helper_pids=()  # not servers: their exit is not a failure
reserved_ports_before=""  # set (maybe to "") once this script has reserved its listener ports
reserved_ports_changed=0
cleanup() {
  trap - INT TERM EXIT
  for pid in "${helper_pids[@]}" "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$reserved_ports_changed" = 1 ]; then
    echo "$reserved_ports_before" >/proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/bench_lib.sh
source scripts/bench_lib.sh

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
cmake --build "$build" --target mqtls mqtls-bench mqtls-ceiling >"$work/build.log" 2>&1 ||
  { tail -n 30 "$work/build.log" >&2; exit 1; }
mqtls="$build/proxy/mqtls"
bench="$build/tests/bench/mqtls-bench"
ceiling="$build/tests/bench/mqtls-ceiling"
echo "mqtls:     $("$mqtls" --version)"

# Room for the idle scenario (tens of thousands of connections): as many descriptors as this
# machine allows for everything started from here, and the whole ephemeral port range for the
# proxies' own connections to the broker (all from 127.0.0.1). Neither changes mqtls's defaults.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ -w /proc/sys/net/ipv4/ip_local_port_range ]; then
  echo "1024 65535" >/proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
fi
# The servers' ports come from 20000-39999 (free_port): while the benchmark runs, the kernel gives
# none of them to an outgoing connection, which could otherwise take one before its server binds
# (restored at exit).
if [ -w /proc/sys/net/ipv4/ip_local_reserved_ports ]; then
  reserved_ports_before=$(cat /proc/sys/net/ipv4/ip_local_reserved_ports)
  if echo "${reserved_ports_before:+$reserved_ports_before,}20000-39999" \
      >/proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null; then
    reserved_ports_changed=1
  fi
fi
# HAProxy reserves two descriptors per connection up front and refuses to start beyond the limit.
haproxy_maxconn=$((($(ulimit -n) - 200) / 2))
[ "$haproxy_maxconn" -gt 60000 ] && haproxy_maxconn=60000
echo "open files: $(ulimit -n) per process; local ports $(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)"

say "PKI"
certs="$build/certs"
bash certs/gen.sh "$certs"

say "servers"
broker_port=$(free_port)
{ echo "listener $broker_port 127.0.0.1"; mosquitto_common_config; } >"$work/mosquitto-plain.conf"
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
  local admin="" workers=1 pin=("${server_pin[@]}")
  if [ "$name" = mqtls ] && [ "$mqtls_workers" != 1 ]; then
    workers=$mqtls_workers
    pin=()
  elif [ "$name" = mqtls-2w ] || [ "$name" = mqtls-before-2w ]; then
    workers=2
    pin=()
  fi
  if [ -n "$admin_port" ]; then
    admin="admin: {listen: \"127.0.0.1:$admin_port\", broker_check: on_demand}"
  fi
  started_port=$(free_port)
  mqtls_target_config "$started_port" "$broker_port" "$certs" "$workers" "$admin" "$extra" \
    >"$work/$name.yaml"
  "$binary" --check --config "$work/$name.yaml"
  "${pin[@]}" "$binary" --config "$work/$name.yaml" 2>"$work/$name.log" &
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
  extra_targets+=("mqtls-nometrics=tls:$started_port:$started_pid,$broker_pid")
fi
if [ "$want_framed" = 1 ]; then
  start_mqtls mqtls-framed "$mqtls" "packet_framing: always"
  extra_targets+=("mqtls-framed=tls:$started_port:$started_pid,$broker_pid")
fi
if [ -n "$baseline" ]; then
  start_mqtls mqtls-before "$baseline"
  extra_targets+=("mqtls-before=tls:$started_port:$started_pid,$broker_pid")
fi
if [ "$want_scaling" = 1 ]; then
  start_mqtls mqtls-2w "$mqtls"
  extra_targets+=("mqtls-2w=tls:$started_port:$started_pid,$broker_pid")
  if [ -n "$baseline" ]; then
    start_mqtls mqtls-before-2w "$baseline"
    extra_targets+=("mqtls-before-2w=tls:$started_port:$started_pid,$broker_pid")
  fi
fi

mosq_tls_port=$(free_port)
mosquitto_tls_config "$mosq_tls_port" "$certs" >"$work/mosquitto-tls.conf"
"${server_pin[@]}" mosquitto -c "$work/mosquitto-tls.conf" 2>"$work/mosquitto-tls.log" &
mosq_tls_pid=$!
pids+=("$mosq_tls_pid")
wait_listening mosquitto-tls "$mosq_tls_pid" "$mosq_tls_port" "$work/mosquitto-tls.log"
echo "mosquitto TLS listener        127.0.0.1:$mosq_tls_port  pid $mosq_tls_pid"

# NAME=tls|plain:PORT:PIDS per target, in the first round's order (mqtls first).
targets=("mqtls=tls:$mqtls_port:$mqtls_pid,$broker_pid"
         "${extra_targets[@]}"
         "mosquitto-tls=tls:$mosq_tls_port:$mosq_tls_pid")

# start_haproxy NAME [BIND_OPTIONS]: HAProxy terminating mutual TLS in front of the plaintext
# broker, BIND_OPTIONS appended to its bind line; adds it to the targets.
start_haproxy() {
  local name=$1 bind_extra=${2:-} port
  port=$(free_port)
  cat "$certs/server-ec.pem" "$certs/server-ec.key" >"$work/haproxy.pem"
  haproxy_target_config "$port" "$broker_port" "$certs" "$work/haproxy.pem" "$haproxy_maxconn" \
    "$bind_extra" >"$work/$name.cfg"
  "${server_pin[@]}" haproxy -db -f "$work/$name.cfg" >"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_listening "$name" "$pid" "$port" "$work/$name.log"
  printf '%-29s 127.0.0.1:%s  pid %s  (%s)\n' "$name -> broker" "$port" "$pid" \
    "$(haproxy -v | head -n 1)"
  targets+=("$name=tls:$port:$pid,$broker_pid")
}

if [ "$want_haproxy" = 1 ] && ensure_haproxy; then
  start_haproxy haproxy
  start_haproxy haproxy-tuned no-tls-tickets
else
  echo "haproxy: skipped (not installed and not installable, or --no-haproxy)"
fi
targets+=("mosquitto-plain=plain:$broker_port:$broker_pid")

say "ceiling"
status=0
# The in-process ceiling for each connect scenario mqtls-bench runs (all four by default), with
# the client chain it presents (--chain leaf: the leaf-only file).
requested=""
ceiling_cert="$certs/client.pem"
for ((i = 0; i + 1 < ${#bench_args[@]}; i++)); do
  case "${bench_args[$i]}" in
    --scenarios) requested=${bench_args[$((i + 1))]} ;;
    --chain) [ "${bench_args[$((i + 1))]}" != leaf ] || ceiling_cert="$certs/client-leafonly.pem" ;;
  esac
done
for ((i = 0; i + 1 < ${#bench_args[@]}; i++)); do
  if [ "${bench_args[$i]}" = --leaf-cert ] && [ "$ceiling_cert" != "$certs/client.pem" ]; then
    ceiling_cert=${bench_args[$((i + 1))]}
  fi
done
ceiling_scenarios=""
for scenario in connect-tls13 connect-tls12 resume-tls13 resume-tls12; do
  if [ -z "$requested" ] || [[ ",$requested," == *",$scenario,"* ]]; then
    ceiling_scenarios+="${ceiling_scenarios:+,}${scenario/connect-/full-}"
  fi
done
ceiling_cmd=("${server_pin[@]}" "$ceiling" --config "$work/mqtls.yaml"
             --cert "$ceiling_cert" --key "$certs/client.key" --ca "$certs/ca-bundle.pem"
             --duration "$duration" --scenarios "$ceiling_scenarios")
if [ -n "$ceiling_scenarios" ]; then
  echo "${ceiling_cmd[*]}   (again before each round)"
  if [ "$want_scaling" = 1 ]; then
    # Unpinned: one thread, two as workers, two in one library context, one again (the
    # machine's speed drifts): the rate ratios are how the TLS work scales across this machine's
    # cores.
    for threads in 1 2 2-one 1; do
      scaling_cmd=("$ceiling" --config "$work/mqtls.yaml" --cert "$ceiling_cert"
                   --key "$certs/client.key" --ca "$certs/ca-bundle.pem" --duration "$duration"
                   --scenarios "$ceiling_scenarios" --threads "${threads%-one}")
      [ "$threads" != 2-one ] || scaling_cmd+=(--one-library)
      echo "${scaling_cmd[*]}"
      "${scaling_cmd[@]}" | tee -a "$work/ceiling-threads-$threads.txt" ||
        { status=$?; echo "bench.sh: mqtls-ceiling --threads $threads failed" >&2; }
    done
  fi
else
  echo "no connect scenario requested: no ceiling"
fi

say "benchmark"
cat <<'NOTES'
notes: mosquitto-tls does TLS and brokering in one process; mqtls and haproxy add a loopback hop
       to the plaintext broker, whose CPU counts in their "total" columns. haproxy only terminates
       TLS (no CONNECT rewrite). Both Mosquittos run with set_tcp_nodelay true: with the default
       (Nagle on), Mosquitto's CONNACK after a TLS 1.3 session ticket waits ~40 ms for an ACK.
       Rates vary with other load on this machine; CPU per operation varies less.
NOTES
count=${#targets[@]}
for ((round = 1; round <= rounds; round++)); do
  order=()
  for ((i = 0; i < count; i++)); do
    order+=(--target "${targets[$(((i + round - 1) % count))]}")
  done
  bench_cmd=("${client_pin[@]}" "$bench" "${order[@]}"
             --ca "$certs/ca-bundle.pem" --cert "$certs/client.pem" --key "$certs/client.key"
             --sub-cert "$certs/client2.pem" --sub-key "$certs/client2.key"
             --duration "$duration" --warmup "$warmup" "${bench_args[@]}")
  [ "$rounds" = 1 ] || say "round $round of $rounds"
  if [ -n "$ceiling_scenarios" ]; then
    "${ceiling_cmd[@]}" | tee "$work/ceiling-$round.txt" ||
      { status=$?; echo "bench.sh: mqtls-ceiling failed (status $status)" >&2; }
  fi
  echo "${bench_cmd[*]}"
  "${bench_cmd[@]}" | tee "$work/round-$round.txt" || status=$?
done

say "summary"
names=()
for spec in "${targets[@]}"; do names+=("${spec%%=*}"); done
python3 - "$work" "${names[*]}" "$work"/round-*.txt <<'PY'
"""Medians over the rounds of mqtls-bench's tables, mqtls against its ceiling, and scaling."""
import os
import re
import statistics
import sys

work, names, paths = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
subject = names[0]
others = sorted(names[1:], key=lambda n: (not n.startswith("haproxy"), names.index(n)))
# Table title prefix, the labels of the numbers in its cells, and whether higher is better.
TABLES = [("Rates", ["rate"], True),
          ("Latency", ["p50 us", "p99 us"], False),
          ("Idle memory", ["KiB per connection"], False),
          ("Server CPU", ["CPU us TLS process", "CPU us total"], False)]


def parse(path):
    """{(row title, label, higher is better): {target: value}} from one mqtls-bench report."""
    figures, table, columns = {}, None, None
    for line in open(path, errors="replace"):
        line = line.rstrip()
        match = [t for t in TABLES if line.startswith(t[0])]
        if match:
            table, columns = match[0], None
        elif table is not None and not line:
            table = None if columns is not None else table
        elif table is not None:
            cells = re.split(r"\s{2,}", line.strip())
            if columns is None:
                columns = [c for c in cells[1:] if c in names] if cells[0] == "scenario" else None
                continue
            title = re.sub(r" \([^()]*\)$", "", cells[0])
            for target, cell in zip(columns, cells[1:]):
                numbers = re.findall(r"\d+(?:\.\d+)?", cell.split(" (")[0])
                for label, value in zip(table[1], numbers):
                    figures.setdefault((title, label, table[2]), {})[target] = float(value)
    return figures


def number(value):
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


rounds = [parse(path) for path in paths]
keys = list(dict.fromkeys(key for figures in rounds for key in figures))
own = {key: [r[key][subject] for r in rounds if subject in r.get(key, {})] for key in keys}
rows = [["figure", subject] + [f"/{other}" for other in others]]
for key in keys:
    if not own[key]:
        continue
    row = [f"{key[0]} {key[1]}", number(statistics.median(own[key]))]
    for other in others:
        ratios = [r[key][subject] / r[key][other] for r in rounds
                  if subject in r.get(key, {}) and r[key].get(other, 0) > 0]
        row.append(f"{statistics.median(ratios):.2f}" if ratios else "-")
    rows.append(row)
print(f"Medians over {len(paths)} round(s): {subject}'s figure, and its ratio to each target\n"
      f"(median of the per-round ratios; rate > 1: {subject} faster; others < 1: {subject} lower)")
widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
for row in rows:
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
print()

def ceiling_of(path):
    """{scenario: server CPU us} from one mqtls-ceiling run."""
    found = {}
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            match = re.match(r"ceiling (\S+) server_cpu_us=([\d.]+)", line)
            if match:
                found[match[1]] = float(match[2])
    return found


# Each round against the ceiling measured just before it.
ceilings = [ceiling_of(re.sub(r"round-(\d+)\.txt$", r"ceiling-\1.txt", path)) for path in paths]
for key in keys:
    found = re.fullmatch(r"connect TLS1\.(\d) (full|resumed)", key[0])
    if key[1] != "CPU us TLS process" or not found or not own[key]:
        continue
    name = ("full" if found[2] == "full" else "resume") + "-tls1" + found[1]
    pairs = [(c[name], r[key][subject]) for c, r in zip(ceilings, rounds)
             if name in c and subject in r.get(key, {})]
    if pairs:
        shares = sorted(100 * best / proxy for best, proxy in pairs)
        print(f"{subject} end to end vs ceiling: {found[2]} TLS1.{found[1]} "
              f"{statistics.median(shares):.0f}% (rounds: {', '.join(f'{v:.0f}%' for v in shares)}; "
              f"proxy CPU per handshake+CONNACK {statistics.median(p for _, p in pairs):.0f} us, "
              f"ceiling {statistics.median(b for b, _ in pairs):.0f} us)")

# --scaling: workers: 2 against workers: 1 by CPU per handshake, and the ceiling's thread scaling.
if "mqtls-2w" in names:
    print()
    for key in keys:
        if key[1] != "CPU us TLS process" or not key[0].startswith("connect"):
            continue
        ratios = [r[key][subject] / r[key]["mqtls-2w"] for r in rounds
                  if subject in r.get(key, {}) and r[key].get("mqtls-2w", 0) > 0]
        if ratios:
            two = statistics.median([r[key]["mqtls-2w"] for r in rounds if "mqtls-2w" in r.get(key, {})])
            print(f"workers: 2, {key[0]}: {two:.0f} us of CPU per handshake against "
                  f"{statistics.median(own[key]):.0f} us with workers: 1; with a core per worker "
                  f"that is {2 * statistics.median(ratios):.2f}x the one-worker rate")
        before = [r[key]["mqtls-2w"] / r[key]["mqtls-before-2w"] for r in rounds
                  if r.get(key, {}).get("mqtls-before-2w", 0) > 0 and "mqtls-2w" in r[key]]
        if before:
            print(f"workers: 2, {key[0]}: CPU per handshake against the baseline with "
                  f"workers: 2: {statistics.median(before):.2f}x "
                  f"(rounds: {', '.join(f'{v:.2f}' for v in before)})")
rates = {}
for threads in ("1", "2", "2-one"):
    path = os.path.join(work, f"ceiling-threads-{threads}.txt")
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            found = re.match(r"ceiling (\S+) .* rate=(\d+)", line)
            if found:
                rates.setdefault(found[1], {}).setdefault(threads, []).append(float(found[2]))
for name, by in rates.items():
    if by.get("1") and by.get("2"):
        one, two = statistics.mean(by["1"]), statistics.mean(by["2"])
        shared = (f"; in one library context {statistics.mean(by['2-one']):.0f}/s, "
                  f"{statistics.mean(by['2-one']) / one:.2f}x" if by.get("2-one") else "")
        print(f"ceiling {name}: two threads as two workers {two:.0f}/s, one thread "
              f"{one:.0f}/s (mean of the runs before and after): {two / one:.2f}x{shared}")
PY

if [ "$want_paired" = 1 ]; then
  say "paired"
  paired_scenarios=""
  for scenario in ${requested//,/ }; do
    case "$scenario" in idle*) ;; *) paired_scenarios+="${paired_scenarios:+,}$scenario" ;; esac
  done
  [ -n "$requested" ] ||
    paired_scenarios=connect-tls13,resume-tls13,connect-tls12,resume-tls12,publish-64,publish-16k
  peers=(mosquitto-tls)
  [ "$want_haproxy" = 0 ] || ! command -v haproxy >/dev/null || peers=(haproxy haproxy-tuned "${peers[@]}")
  if [ -z "$paired_scenarios" ]; then
    echo "no scenario to pair (idle is measured alone)"
  else
    for peer in "${peers[@]}"; do
      echo "scripts/ab.sh $peer mqtls (mqtls / $peer, CPU per operation of the TLS-terminating process):"
      MQTLS_BENCH_BUILD="$build" bash scripts/ab.sh --rounds $((rounds < 3 ? 3 : rounds)) \
        --duration "$duration" --warmup "$warmup" --scenarios "$paired_scenarios" "$peer" "$mqtls" \
        >"$work/paired-$peer.txt" 2>&1 || { status=1; tail -n 20 "$work/paired-$peer.txt" >&2; }
      sed -n 's/after\/before median/median/p' "$work/paired-$peer.txt" | sed 's/^/  /'
    done
    echo "(mosquitto-tls's process also brokers: for publish scenarios it does the work of mqtls and"
    echo " the broker together, so only its handshake ratios compare like with like)"
  fi
fi

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
