#!/bin/bash
# Carried in the project (from the team's shared tools) so the suite builds its own API server
# on any Debian machine; tests/kube/cluster.py runs it.
# Builds a real kube-apiserver (Kubernetes v1.20.2) from Debian bookworm's `kubernetes` source
# package, which carries the full upstream tree with vendor/, using Debian's Go 1.19.
# Needs root on Debian bookworm (apt). Takes about 4 minutes on 2 cores the first time; later runs
# reuse the binary. Prints the path of the binary on its last line.
#
#   ATLAS_KUBE_HOME   where sources, Go cache and the binary live (default ~/.cache/atlas-kube)
#
# Four facts make this build work:
#   1. Kubernetes 1.20 builds in GOPATH mode (GO111MODULE=off), as its own hack/ scripts do.
#   2. pkg/generated/openapi/zz_generated.openapi.go is not in the tarball: `make gen_openapi` (needs rsync).
#   3. The vendored modern-go/reflect2 v1.0.1 crashes with Go >= 1.18: replace it with Debian's 1.0.2.
#   4. The version is stamped through -ldflags into component-base and client-go.
set -euo pipefail
H=${ATLAS_KUBE_HOME:-$HOME/.cache/atlas-kube}
BIN=$H/bin/kube-apiserver
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
mkdir -p "$H"/{apt/lists/partial,apt/cache/archives/partial,src,debs,bin,gopath/src/k8s.io,home}

need=()
for p in golang-go etcd-server rsync make openssl curl; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A private apt state whose sources are the system's own bookworm entries plus their deb-src twins.
SL=$H/apt/sources.list
: > "$SL"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] && grep -E '^deb ' "$f" | grep -w bookworm | while read -r line; do
    echo "$line" >> "$SL"; echo "deb-src${line#deb}" >> "$SL"; done
done
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  awk 'BEGIN{RS="";FS="\n"} /Types: deb/ && /bookworm([ \n]|$)/ {
         u="";s="";c="";k="";
         for(i=1;i<=NF;i++){ if($i ~ /^URIs:/){u=$i; sub(/^URIs: */,"",u)}
           if($i ~ /^Suites:/){s=$i; sub(/^Suites: */,"",s)}
           if($i ~ /^Components:/){c=$i; sub(/^Components: */,"",c)}
           if($i ~ /^Signed-By:/){k=$i; sub(/^Signed-By: */,"",k)} }
         n=split(s,ss," "); for(j=1;j<=n;j++) if(ss[j]=="bookworm"){
           print "deb [signed-by=" k "] " u " bookworm " c; print "deb-src [signed-by=" k "] " u " bookworm " c } }' "$f" >> "$SL"
done
grep -q '^deb-src' "$SL" || { echo "no bookworm apt source found to derive deb-src from" >&2; exit 1; }
APTO=(-o "Dir::Etc::SourceList=$SL" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$H/apt/lists" -o "Dir::Cache=$H/apt/cache")
apt-get "${APTO[@]}" update -qq

SRC=$H/src/kubernetes-1.20.2
if [ ! -d "$SRC" ]; then
  (cd "$H/src" && apt-get "${APTO[@]}" source --download-only kubernetes=1.20.5+really1.20.2-1.1+deb12u1 >/dev/null)
  (cd "$H/src" && echo "b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc  kubernetes_1.20.5+really1.20.2.orig.tar.gz" | sha256sum -c --quiet)
  (cd "$H/src" && tar xzf kubernetes_1.20.5+really1.20.2.orig.tar.gz)
  (cd "$H/debs" && apt-get "${APTO[@]}" download golang-github-modern-go-reflect2-dev >/dev/null && dpkg-deb -x golang-github-modern-go-reflect2-dev_*.deb x)
  R=$SRC/vendor/github.com/modern-go/reflect2
  rm -f "$R"/*.go "$R"/*.s
  cp "$H"/debs/x/usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$H"/debs/x/usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$R"/
fi
ln -sfn "$SRC" "$H/gopath/src/k8s.io/kubernetes"

cd "$SRC"
[ -f pkg/generated/openapi/zz_generated.openapi.go ] || HOME=$H/home make gen_openapi >/dev/null
export GOPATH=$H/gopath GO111MODULE=off GOPROXY=off GOFLAGS= GOCACHE=$H/gocache CGO_ENABLED=0
cd "$GOPATH/src/k8s.io/kubernetes"
LDF="-s -w"
for V in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  LDF="$LDF -X $V.gitVersion=v1.20.2 -X $V.gitMajor=1 -X $V.gitMinor=20 -X $V.gitTreeState=archive"
done
go build -ldflags "$LDF" -o "$BIN" k8s.io/kubernetes/cmd/kube-apiserver
rm -rf "$H/gocache"
echo "$BIN"
