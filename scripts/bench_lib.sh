# shellcheck shell=bash
# Shared by scripts/bench.sh and scripts/ab.sh (sourced, not run): free loopback ports, waiting
# for a server to listen, and the configuration of an mqtls benchmark target. Errors name the
# calling script.

# Free: nothing listens there, and no socket of any state uses it as its local port.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || return 1
  ! command -v ss >/dev/null || [ -z "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
}

# A free loopback port from 20000-39999, distinct from those handed out before.
taken=" "
free_port() {
  local port=$((20000 + RANDOM % 20000))
  while ! port_free "$port" || [[ "$taken" == *" $port "* ]]; do
    port=$((port < 39999 ? port + 1 : 20000))
  done
  taken+="$port "
  echo "$port"
}

# wait_listening NAME PID PORT LOG: waits until PID listens on PORT; exits with the log's tail if
# it exits or takes too long.
wait_listening() {
  local name=$1 pid=$2 port=$3 log=$4
  for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "${0##*/}: $name exited at start:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    port_free "$port" || return 0
    sleep 0.05
  done
  echo "${0##*/}: $name does not listen on port $port" >&2
  exit 1
}

# mqtls_target_config PORT BROKER_PORT CERTS WORKERS [ADMIN_LINE [LIMITS_LINE]]: the YAML of an
# mqtls benchmark target on stdout: one mutual-TLS listener with the test PKI's EC server
# certificate in front of the plaintext broker, warnings only in the log.
mqtls_target_config() {
  local port=$1 broker_port=$2 certs=$3 workers=$4 admin=${5:-} extra=${6:-}
  # As many connections as this shell's open-file limit has room for (two descriptors each),
  # at most 60000: a larger figure would only make mqtls warn that it admits fewer.
  local files max_connections=60000
  files=$(ulimit -n)
  [[ "$files" =~ ^[0-9]+$ ]] && max_connections=$(((files - 512) / 2))
  [ "$max_connections" -gt 60000 ] && max_connections=60000
  [ "$max_connections" -lt 1 ] && max_connections=1
  cat <<YAML
$admin
workers: $workers
log:
  level: warn
listeners:
  - name: bench
    bind: 127.0.0.1
    port: $port
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
  max_connections: $max_connections
  $extra
YAML
}

# haproxy_target_config PORT BROKER_PORT CERTS PEM MAXCONN [BIND_OPTIONS]: the configuration of
# HAProxy 2.6 (one thread, TCP mode) terminating mutual TLS on PORT in front of the plaintext
# broker, with PEM the server certificate and key in one file, BIND_OPTIONS appended to its bind
# line (no-tls-tickets: "tuned").
haproxy_target_config() {
  local port=$1 broker_port=$2 certs=$3 pem=$4 maxconn=$5 bind_extra=${6:-}
  cat <<CFG
global
  nbthread 1
  maxconn $maxconn
defaults
  mode tcp
  timeout connect 5s
  timeout client 10m
  timeout server 10m
frontend mqtts
  bind 127.0.0.1:$port ssl crt $pem ca-file $certs/ca-bundle.pem verify required $bind_extra
  default_backend broker
backend broker
  server mosquitto 127.0.0.1:$broker_port
CFG
}

# mosquitto_tls_config PORT CERTS: a second Mosquitto with its own mutual-TLS listener on PORT
# (use_identity_as_username), the test PKI's EC server certificate.
mosquitto_tls_config() {
  local port=$1 certs=$2
  # "user": when started as root, keep root rather than switch to "mosquitto", which cannot read
  # the keys in the build tree.
  cat <<CONF
user $(id -un)
listener $port 127.0.0.1
cafile $certs/ca-bundle.pem
certfile $certs/server-ec.pem
keyfile $certs/server-ec.key
require_certificate true
use_identity_as_username true
CONF
  mosquitto_common_config
}

# mosquitto_common_config: what every benchmark Mosquitto shares: anonymous clients, errors only
# in the log, a deep queue, and Nagle off (with it on, a CONNACK after a TLS 1.3 session ticket
# waits ~40 ms for an ACK).
mosquitto_common_config() {
  cat <<CONF
allow_anonymous true
log_dest stderr
log_type error
max_queued_messages 100000
set_tcp_nodelay true
CONF
}

# ensure_haproxy: installs HAProxy with apt-get when it is missing and this runs as root; returns
# non-zero when it is still missing.
ensure_haproxy() {
  command -v haproxy >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing haproxy (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >/dev/null 2>&1 ||
      echo "${0##*/}: apt-get install haproxy failed" >&2
  fi
  command -v haproxy >/dev/null
}
