#!/usr/bin/env bash
# Builds the mqtls container image (deploy/container/Containerfile) with podman, from source.
#
#   scripts/image.sh [all]    the mqtls image, and the Mosquitto image the tests put beside it
#   scripts/image.sh mqtls    only the mqtls image
#   scripts/image.sh base     only the Debian 12 base image
#
# Environment:
#   MQTLS_IMAGE         tag of the mqtls image          (default localhost/mqtls:latest)
#   MQTLS_BROKER_IMAGE  tag of the Mosquitto image      (default localhost/mqtls-mosquitto:latest)
#   MQTLS_BASE_IMAGE    Debian 12 image both start from (default localhost/mqtls-base:bookworm).
#                       A localhost/ name that does not exist yet is made here: a
#                       `debootstrap --variant=minbase bookworm` root file system from
#                       MQTLS_MIRROR (default: the Debian mirror apt uses), imported with
#                       `podman import`. Any other name (e.g. docker.io/library/debian:12) is
#                       pulled by podman as usual.
#   CONTAINERS_CONF     podman settings (default deploy/container/containers.conf: runc, no
#                       raised ulimits)
# Needs root (podman, debootstrap). Exits non-zero, saying why, if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
what=${1:-all}
image=${MQTLS_IMAGE:-localhost/mqtls:latest}
broker_image=${MQTLS_BROKER_IMAGE:-localhost/mqtls-mosquitto:latest}
base=${MQTLS_BASE_IMAGE:-localhost/mqtls-base:bookworm}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/deploy/container/containers.conf}
podman=(podman --runtime runc)

case "$what" in all | mqtls | base) ;; *)
  echo "usage: scripts/image.sh [all|mqtls|base]" >&2
  exit 2
  ;;
esac

# The mirror apt already uses (first deb.debian.org-style URI of the main archive).
default_mirror() {
  local uri
  uri=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
    /etc/apt/sources.list.d/ 2>/dev/null | head -n1 | awk '{print $2}') || true
  echo "${uri:-http://deb.debian.org/debian}"
}

# Makes $base from a minbase bookworm root, unless it exists. Serialised with flock, so parallel
# runs make it once.
make_base() {
  if "${podman[@]}" image exists "$base"; then return 0; fi
  if [[ "$base" != localhost/* ]]; then return 0; fi # podman build pulls it
  exec 9<"$0"
  flock 9
  if "${podman[@]}" image exists "$base"; then return 0; fi
  command -v debootstrap >/dev/null || {
    echo "image.sh: debootstrap is missing (run scripts/setup.sh)" >&2
    exit 1
  }
  local mirror rootfs start=$SECONDS
  mirror=${MQTLS_MIRROR:-$(default_mirror)}
  rootfs=$(mktemp -d /var/tmp/mqtls-base.XXXXXX)
  [[ -d "$rootfs" && "$rootfs" == /var/tmp/mqtls-base.* ]] || exit 1
  trap 'rm -rf -- "$rootfs"' EXIT
  echo "== base image $base: debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    rm -f -- "$rootfs.log"
    echo "image.sh: debootstrap failed" >&2
    exit 1
  }
  rm -f -- "$rootfs.log"
  # The same suites as the debian:12 image: updates and security fixes too.
  local security=${mirror%/debian*}/debian-security
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
  # Like debian:12-slim: no manuals, documentation (copyright files excepted) or translations,
  # now or from packages installed later.
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/lintian/*' \
    >"$rootfs/etc/dpkg/dpkg.cfg.d/01-slim"
  printf '%s\n' 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/01-no-translations"
  find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "${podman[@]}" import --quiet --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase bookworm" - "$base" >/dev/null
  rm -rf -- "$rootfs"
  trap - EXIT
  echo "== base image $base made in $((SECONDS - start)) s"
}

make_base
[[ "$what" == base ]] && exit 0

# The Mosquitto image is fetched while the mqtls build compiles (one is network-bound, the other
# CPU-bound); --jobs 2 runs the runtime stage's package installation beside the compile too.
broker_pid=""
broker_log=$(mktemp)
trap 'rm -f -- "$broker_log"' EXIT
if [[ "$what" == all ]]; then
  "${podman[@]}" build --format docker --build-arg "BASE=$base" -t "$broker_image" \
    -f deploy/container/Mosquitto.Containerfile deploy/container >"$broker_log" 2>&1 &
  broker_pid=$!
fi
# The image this build replaces, removed afterwards with the intermediate images only it used.
previous=$("${podman[@]}" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
start=$SECONDS
echo "== image $image (from $base)"
"${podman[@]}" build --format docker --jobs 2 --build-arg "BASE=$base" \
  --build-arg "JOBS=$(nproc 2>/dev/null || echo 2)" -t "$image" -f deploy/container/Containerfile .
echo "== image $image built in $((SECONDS - start)) s," \
  "$("${podman[@]}" image inspect --format '{{.Size}}' "$image") bytes"
current=$("${podman[@]}" image inspect --format '{{.Id}}' "$image")
if [[ -n "$previous" && "$previous" != "$current" ]]; then
  "${podman[@]}" rmi --ignore "$previous" >/dev/null 2>&1 || true
fi
if [[ -n "$broker_pid" ]]; then
  if ! wait "$broker_pid"; then
    cat "$broker_log" >&2
    echo "image.sh: the Mosquitto image failed to build" >&2
    exit 1
  fi
  echo "== image $broker_image built"
fi
