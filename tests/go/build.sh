#!/usr/bin/env bash
# Builds the Go test tools (a Thanos Query-exact client, a grpc-go Thanos sidecar and an
# Envoy-like ADS client swarm, a StoreAPI timer and a delay proxy for bench/) offline,
# in GOPATH mode against Debian's grpc-go 1.33 and miekg/dns (packages golang-go,
# golang-google-grpc-dev, golang-github-miekg-dns-dev; tests/prepare.sh installs them).
# Prints the directory holding the binaries on its last line.
#
#   ATLAS_GO_HOME   where the binaries and Go's build cache go (default ~/.cache/atlas-go)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${ATLAS_GO_HOME:-$HOME/.cache/atlas-go}
mkdir -p "$out/bin" "$out/gocache"
export GO111MODULE=off GOPATH="$here:/usr/share/gocode" GOCACHE="$out/gocache"
for tool in thanos-query-probe thanos-query-watch thanos-sidecar ads-swarm tunnel-bench delay-proxy; do
  go build -o "$out/bin/$tool" "atlastest/$tool"
done
echo "$out/bin"
