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
#
# Every step says what it does; the slow ones say how long they take. Nothing here runs from
# inside a test.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${ATLAS_VENV:-.venv}

step() { printf '\n==> %s\n' "$*" >&2; }

apt_packages=(
  openssl bind9-dnsutils unbound prometheus prometheus-alertmanager
  golang-go golang-google-grpc-dev golang-github-miekg-dns-dev
  etcd-server rsync make curl python3-venv
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

step "ready: run the tests with $venv/bin/python -m pytest"
