#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian (bookworm) machine, so that the
# README's test command passes there by itself. `.ci/run` runs this same script.
#
#   1. Debian packages (apt-get; as root, or through sudo): the real clients and servers the
#      tests drive (openssl, dig, unbound, Prometheus, Alertmanager, promtool), Go with grpc-go
#      and miekg/dns for the Thanos-exact test tools, etcd and the kube-apiserver build's tools.
#   2. A virtual environment (.venv, or $ATLAS_VENV) with the project and its test extras:
#      Debian's Python is externally managed (PEP 668), so nothing goes into the system's.
#   3. A real kube-apiserver, built once from Debian's source package (about 4 minutes on
#      2 cores the first time; cached in ~/.cache/atlas-kube).
#   4. The Go test tools (tests/go: a Thanos Query-exact client, a grpc-go sidecar; seconds).
#   5. The Atlas image, built with Podman from this checkout (packaging/build-image.sh) on a
#      Debian base made once with debootstrap (no registry is reachable here; about a minute
#      the first time), and the Podman settings this machine needs (~/.cache/atlas-podman).
#
# Every step says what it does; the slow ones say how long they take. Nothing here runs from
# inside a test.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${ATLAS_VENV:-.venv}

step() { printf '\n==> %s\n' "$*" >&2; }

apt_packages=(
  openssl bind9-dnsutils unbound prometheus prometheus-alertmanager
  golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-miekg-dns-dev
  etcd-server rsync make curl python3-venv
  podman buildah debootstrap runc fuse-overlayfs slirp4netns uidmap netavark aardvark-dns
  iptables iproute2 containernetworking-plugins passt catatonit
)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
else
  step "Debian packages: all present"
fi

if [ ! -x "$venv/bin/python" ]; then
  step "creating the virtual environment $venv"
  python3 -m venv "$venv"
fi
step "installing the project and its test extras into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'

kube_bin=${ATLAS_KUBE_HOME:-$HOME/.cache/atlas-kube}/bin/kube-apiserver
if [ -x "$kube_bin" ]; then
  step "kube-apiserver: cached at $kube_bin"
else
  step "building kube-apiserver from Debian's source package (about 4 minutes, once)"
  started=$SECONDS
  bash tests/kube/build-apiserver.sh 2>&1 | while IFS= read -r line; do
    printf '    [%3ds] %s\n' $((SECONDS - started)) "${line:0:150}" >&2
  done
  [ -x "$kube_bin" ] || { echo "kube-apiserver build failed" >&2; exit 1; }
fi

step "building the Go test tools"
bash tests/go/build.sh >&2

# Podman on these machines: runc (crun refuses hybrid cgroups), cgroupfs, and ulimits within
# what root may set (the tests export CONTAINERS_CONF to this file).
podman_home=${ATLAS_PODMAN_HOME:-$HOME/.cache/atlas-podman}
mkdir -p "$podman_home"
printf '%s\n' '[containers]' \
  "default_ulimits = [\"nofile=$(ulimit -Hn):$(ulimit -Hn)\", \"nproc=32768:32768\"]" \
  '[engine]' 'runtime = "runc"' 'cgroup_manager = "cgroupfs"' > "$podman_home/containers.conf"
export CONTAINERS_CONF=$podman_home/containers.conf
base=localhost/atlas-base:bookworm
if podman image exists "$base"; then
  step "container base image: $base present"
else
  step "making the container base image $base with debootstrap (about a minute, once)"
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d)
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$mirror" >/dev/null
  $SUDO tar -C "$rootfs" -c . | podman import - "$base" >/dev/null
  $SUDO rm -rf "$rootfs"
fi
step "building the Atlas image from this checkout"
BASE_IMAGE=$base PYTHON="$venv/bin/python" bash packaging/build-image.sh 2>&1 | tail -n 3 >&2

step "ready: run the tests with $venv/bin/python -m pytest"
