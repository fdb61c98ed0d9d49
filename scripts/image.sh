#!/usr/bin/env bash
# The image's `cpu` target built with podman on a machine with no Docker daemon and no access to
# Docker Hub or PyTorch's index (as the CI machines): with Docker and the internet, the README's
# `docker build -t streamchat:cpu .` is the way, and this script is not needed.
#   scripts/image.sh [build] [--tag TAG]   the image (default TAG: localhost/streamchat:cpu)
#   scripts/image.sh podman ARGS...        podman on this script's storage (run, stop, images...)
#   scripts/image.sh --help
# As root: it installs podman and debootstrap with apt-get when they are missing. Podman's
# storage and configuration live in STREAMCHAT_PODMAN_DIR (default /var/tmp/streamchat-podman),
# outside the clone, so a fresh clone on the same machine reuses the build's layers and pip's
# cache: a cold build takes ~6 min on 2 cores, an unchanged one ~1 min.
# The bases are made locally: Debian bookworm with debootstrap from the mirror apt uses here, and
# Debian's Python 3.11 on it standing in for python:3.11-slim-bookworm. pip in the build uses
# the host's own sources (`pip config list`: find-links, indexes, constraint, CA bundle),
# mounted read-only.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "image: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

dir=${STREAMCHAT_PODMAN_DIR:-/var/tmp/streamchat-podman}
debian=localhost/debian:bookworm-slim
python_image=localhost/streamchat-python:3.11-slim-bookworm
packages=(podman buildah runc conmon containernetworking-plugins slirp4netns uidmap iptables
          catatonit debootstrap)

install_packages() {
  command -v podman >/dev/null && command -v debootstrap >/dev/null && return 0
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    || die "podman and debootstrap are missing; install them (apt-get install ${packages[*]})"
  step "installing podman and debootstrap (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null
}

# Podman as root on storage and configuration of its own; nothing under /etc/containers.
configure() {
  [ "$(id -u)" = 0 ] || die "run as root (podman's overlay storage and the debootstrap need it)"
  mkdir -p "$dir/storage" "$dir/run"
  cat >"$dir/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/run"
EOF
  # A container's default nofile above this process's hard limit cannot be set without
  # CAP_SYS_RESOURCE, and podman caps its own nproc at 32768. runc: crun refuses hybrid cgroups.
  local nofile
  nofile=$(ulimit -Hn)
  cat >"$dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
  export CONTAINERS_STORAGE_CONF=$dir/storage.conf CONTAINERS_CONF=$dir/containers.conf
}

# The Debian mirror apt uses here (deb822 or one-line sources), its security mirror beside it.
apt_mirror() {  # $1: "" for the main archive, "-security" for the security one
  local suffix=$1 file
  for file in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    awk -v want="bookworm$suffix" '
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == want) { print uri; exit } }
      /^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { u = $i; if ($(i + 1) == want) { print u; exit } } }
    ' "$file"
  done | head -n 1
}

make_bases() {
  if ! podman image exists "$debian"; then
    local mirror security rootfs
    mirror=${DEBIAN_MIRROR:-$(apt_mirror "")}
    security=${DEBIAN_SECURITY_MIRROR:-$(apt_mirror -security)}
    [ -n "$mirror" ] || die "no Debian bookworm mirror in /etc/apt; set DEBIAN_MIRROR"
    security=${security:-${mirror%/debian}/debian-security}
    step "making $debian with debootstrap from $mirror (~30 s)"
    rootfs=$(mktemp -d "$dir/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >/dev/null
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
      "$mirror" "$mirror" "$security" >"$rootfs/etc/apt/sources.list"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    tar -C "$rootfs" -c . | podman import -q - "$debian" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
  fi
  if ! podman image exists "$python_image"; then
    step "making $python_image: Debian's Python 3.11 on $debian"
    podman build -q --network host --format docker -t "$python_image" -f - . >/dev/null <<EOF
FROM $debian
RUN apt-get update && apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv python3-pip python-is-python3 \
 && rm -rf /var/lib/apt/lists/*
EOF
  fi
}

# The host's pip configuration as one pip.conf, and a read-only mount for every local path it
# names (wheel folders, file:// indexes with the files they link to, the constraint, the CA).
pip_mounts=()
pip_config() {
  local conf=$dir/pip.conf key value word path
  local -A settings=()
  while IFS= read -r line; do
    key=${line%%=*} value=${line#*=}
    key=${key#*.} value=${value#\'} value=${value%\'}
    settings[$key]=$value
  done < <(python3 -m pip config list 2>/dev/null | grep -E "^[^=]+\.(find-links|extra-index-url|index-url|constraint|cert|trusted-host|default-timeout)=" || true)
  printf '[global]\n' >"$conf"
  for key in "${!settings[@]}"; do
    printf '%s = %s\n' "$key" "${settings[$key]}" >>"$conf"
    for word in ${settings[$key]}; do
      path=${word#file://}
      [[ $path == /* && -e $path ]] || continue
      # A simple index links to files beside it (../../files/...): mount the folder above it.
      [[ $(basename "$path") == simple ]] && path=$(dirname "$path")
      pip_mounts+=(-v "$path:$path:ro")
    done
  done
  pip_mounts+=(-v "$conf:/etc/pip.conf:ro")
}

build() {
  local tag=localhost/streamchat:cpu
  while [ $# -gt 0 ]; do
    case "$1" in
      --tag) tag=${2:?--tag needs a name}; shift 2 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
  install_packages
  configure
  make_bases
  pip_config
  step "building $tag (target cpu)"
  local args=(--network host --format docker --build-arg PYTHON_IMAGE="$python_image"
              "${pip_mounts[@]}")
  podman build "${args[@]}" --target cpu -t "$tag" .
  # What an older build left (its image, once the tag moved on, and the layers only it used)
  # is pruned; this build's layers, the next one's cache, are the tagged image's own (the cpu
  # stage is built on its build stage), so they are kept.
  while [ -n "$(podman image prune -f)" ]; do :; done
  podman image inspect --format 'image: {{.RepoTags}} {{.Size}} bytes' "$tag"
}

case "${1:-build}" in
  -h|--help|help) usage ;;
  build) shift $(( $# > 0 )); build "$@" ;;
  --tag) build "$@" ;;
  podman) shift; configure; exec podman "$@" ;;
  *) die "unknown command $1 (see --help)" ;;
esac
