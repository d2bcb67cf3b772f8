#!/usr/bin/env bash
# Installs everything mqtls needs to build, test and run the demo, from Debian 12 packages.
# Idempotent: packages already present are not reinstalled, and apt-get update runs only when needed.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libssl-dev openssl
  libevent-dev
  libyaml-cpp-dev
  prometheus-cpp-dev
  libspdlog-dev libfmt-dev
  libmimalloc-dev
  libgtest-dev
  mosquitto mosquitto-clients libmosquitto-dev
  clang libclang-rt-14-dev
  python3 python3-yaml procps iproute2
  softhsm2 libengine-pkcs11-openssl opensc
  prometheus
  podman debootstrap runc
  systemd adduser
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# kubectl (deploy/kubernetes tests): Debian's only when none is on PATH, never over another one.
if ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The Debian mosquitto package may start a system broker on 1883; tests use their own brokers on free ports.
echo "setup: done"
