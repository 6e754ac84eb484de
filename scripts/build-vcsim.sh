#!/bin/sh
# Build VMware's vCenter simulator (tests/vcsim/main.go over Debian's govmomi) once into a cache dir.
#
# Needs: apt-get install -y golang-go golang-github-vmware-govmomi-dev
# Usage: scripts/build-vcsim.sh            # prints the binary's path; rebuilds only when main.go changed
# Env:   VCSIM_CACHE_DIR (default: <repo>/.cache/vcsim), GOVMOMI_GOPATH (default: /usr/share/gocode)
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/tests/vcsim/main.go"
cache=${VCSIM_CACHE_DIR:-"$root/.cache/vcsim"}
gopath=${GOVMOMI_GOPATH:-/usr/share/gocode}
bin="$cache/vcsim"
stamp="$cache/vcsim.sha256"

command -v go >/dev/null 2>&1 || { echo "build-vcsim: 'go' not found: apt-get install -y golang-go" >&2; exit 3; }
[ -d "$gopath/src/github.com/vmware/govmomi/simulator" ] || {
    echo "build-vcsim: govmomi not found under $gopath: apt-get install -y golang-github-vmware-govmomi-dev" >&2
    exit 3
}

mkdir -p "$cache"
want=$( (sha256sum "$src"; go version) | sha256sum | cut -d' ' -f1)
if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "$bin"
    exit 0
fi

tmp="$bin.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$root/tests/vcsim" && GOPATH="$gopath" GO111MODULE=off GOCACHE="${GOCACHE:-$cache/go-build}" \
    go build -o "$tmp" main.go) >&2 || { echo "build-vcsim: go build failed" >&2; exit 1; }
mv -f "$tmp" "$bin"
echo "$want" > "$stamp"
echo "$bin"
