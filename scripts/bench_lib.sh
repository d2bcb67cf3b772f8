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
  max_connections: 60000
  $extra
YAML
}
