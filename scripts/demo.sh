#!/usr/bin/env bash
# The mqtls demo: installs what is missing, builds, makes a dev PKI, starts a local Mosquitto as
# the upstream broker, starts mqtls in front of it, and shows a device publishing with its client
# certificate while a subscriber (another device) receives it. The broker's own log shows the
# username it saw: the certificate's CN, not what the device claimed. Ctrl-C stops everything.
#   MQTLS_DEMO_ROUNDS=N  publish N times then stop (default: until Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work="$root/.demo"
rounds=${MQTLS_DEMO_ROUNDS:-0}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pids=()
cleanup() {
  trap - INT TERM EXIT
  say "stopping everything the demo started"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

say "setup (Debian packages)"
bash scripts/setup.sh

say "build"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQTLS_TESTS=ON >/dev/null
cmake --build "$root/build" --parallel "$(nproc)" --target mqtls | tail -n 1

say "dev PKI (certs/gen.sh)"
bash certs/gen.sh "$root/certs/out"

mkdir -p "$work"
broker_port=1883
if ! port_free "$broker_port"; then
  broker_port=18830
  echo "port 1883 is taken (a system broker?); the demo broker uses $broker_port"
fi
proxy_port=${MQTLS_DEMO_PORT:-8883}
admin_port=9100
if ! port_free "$admin_port"; then admin_port=19100; fi

say "Mosquitto on 127.0.0.1:$broker_port (plaintext, loopback only, ACL: devices/<username>/#)"
cat >"$work/acl" <<ACL
pattern write devices/%u/#
pattern read devices/#
ACL
cat >"$work/mosquitto.conf" <<CONF
listener $broker_port 127.0.0.1
allow_anonymous true
acl_file $work/acl
connection_messages true
log_type error
log_type warning
log_type notice
log_type information
log_dest stderr
CONF
: >"$work/mosquitto.log"
mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
pids+=($!)

say "mqtls on 127.0.0.1:$proxy_port -> 127.0.0.1:$broker_port (config/minimal.yaml, admin on :$admin_port)"
export MQTLS_CERTS="$root/certs/out" MQTLS_UPSTREAM_PORT="$broker_port" MQTLS_PORT="$proxy_port"
# config/minimal.yaml plus the admin listener that serves /metrics.
{ cat config/minimal.yaml; printf 'admin:\n  listen: 127.0.0.1:%s\n' "$admin_port"; } >"$work/mqtls.yaml"
"$root/build/proxy/mqtls" --check --config "$work/mqtls.yaml"
"$root/build/proxy/mqtls" --config "$work/mqtls.yaml" 2>"$work/mqtls.log" &
pids+=($!)
for _ in $(seq 100); do grep -q "mqtls ready" "$work/mqtls.log" && break; sleep 0.1; done

certs="$root/certs/out"
tls=(-h localhost -p "$proxy_port" --cafile "$certs/ca-bundle.pem")

say "subscriber: device-002 (client2.pem) subscribes to devices/# through mqtls"
mosquitto_sub "${tls[@]}" --cert "$certs/client2.pem" --key "$certs/client2.key" \
  -V mqttv5 -t 'devices/#' -v -F '   received  %t  %p' &
pids+=($!)
sleep 1

i=0
while :; do
  i=$((i + 1))
  say "device-001 (client.pem) publishes, claiming username 'admin'"
  mosquitto_pub "${tls[@]}" --cert "$certs/client.pem" --key "$certs/client.key" \
    -V mqttv311 -u admin -i sensor-1 -t devices/device-001/temperature -m "21.$i C"
  sleep 0.5
  echo "   broker log (the username Mosquitto saw):"
  grep -o "New client connected .* as sensor-1 .*" "$work/mosquitto.log" | tail -n 1 | sed 's/^/     /'
  echo "   mqtls log:"
  grep "conn=" "$work/mqtls.log" | grep "client_id=sensor-1" | tail -n 1 | sed 's/^/     /'
  if [ "$i" -eq 1 ]; then
    echo "   metrics (GET http://127.0.0.1:$admin_port/metrics on mqtls's admin listener, what"
    echo "   Prometheus scrapes; deploy/prometheus and deploy/grafana alert and chart on them):"
    python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
      "http://127.0.0.1:$admin_port/metrics" |
      grep -E '^mqtls_(tls_handshakes_total|mqtt_connects_total|certificate_not_after_timestamp_seconds)[{ ]' |
      awk '$NF != 0' | sed 's/^/     /'
  fi
  if [ "$rounds" -gt 0 ] && [ "$i" -ge "$rounds" ]; then break; fi
  echo "   (Ctrl-C to stop)"
  sleep 3
done
