#!/usr/bin/env bash
# Builds one FROM-scratch image per botmesh binary (and for nats-server,
# built from its Go module at the version go.mod pins). Nothing is pulled:
# the binaries are built here, statically, and copied into the images.
#
#   deploy/images.sh [TAG]                   # every image; default tag: dev
#   deploy/images.sh TAG name=./pkg/of/main  # only these (e.g. your own command)
#   deploy/images.sh TAG name=../mycmd/cmd/x # a main in a module of its own, outside the workspace
#
# `make image CMD=./services/mycmd/cmd/mycmd` runs the second form.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK="$PWD/go.work" # the binaries come from the workspace's modules
tag="${1:-dev}"
shift || true
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# name → Go package of its main
declare -A bins=(
  [router]=./router/cmd/router
  [gateway]=./gateway/cmd/gateway
  [echo]=./services/echo/cmd/echo
  [registry-cmd]=./services/registry-cmd/cmd/registry-cmd
  [query]=./services/query/cmd/query
  [note]=./services/note/cmd/note
  [greeter]=./services/greeter/cmd/greeter
  [botmesh]=./cmd/botmesh
  [frontdoor]=./cmd/frontdoor
  [nats-server]=github.com/nats-io/nats-server/v2
)
if [ $# -gt 0 ]; then
  bins=()
  for kv in "$@"; do bins[${kv%%=*}]=${kv#*=}; done
fi

# A directory outside this repository is a module of its own (your command
# in its own repository): it is built there, without the workspace, with
# its go.mod's requirements and replace lines.
inside=(./cmd/healthcheck)
outside=()
for name in "${!bins[@]}"; do
  pkg=${bins[$name]}
  if [ -d "$pkg" ]; then
    dir=$(cd "$pkg" && pwd -P)
    case "$dir/" in
    "$(pwd -P)/"*) inside+=("$pkg") ;;
    *) outside+=("$name") ;;
    esac
  else
    inside+=("$pkg")
  fi
done

echo "building static binaries"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/bin/" "${inside[@]}"
for name in "${outside[@]}"; do
  pkg=${bins[$name]}
  echo "building $pkg in its own module"
  (cd "$pkg" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags='-s -w' -o "$out/bin/$(basename "$pkg")" .)
done

certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || { echo "missing $certs (apt-get install ca-certificates)" >&2; exit 1; }

for name in "${!bins[@]}"; do
  ctx="$out/ctx-$name"
  mkdir -p "$ctx/config"
  bin="$(basename "${bins[$name]}")"
  [ "$name" = nats-server ] && bin=nats-server
  cp "$out/bin/$bin" "$ctx/app"
  mkdir -p "$ctx/data" && touch "$ctx/data/.keep"
  cp "$out/bin/healthcheck" "$ctx/healthcheck"
  cp "$certs" "$ctx/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nbotmesh:x:65532:65532:botmesh:/nonexistent:/sbin/nologin\n' > "$ctx/passwd"
  printf 'root:x:0:\nbotmesh:x:65532:\n' > "$ctx/group"
  if [ "$name" = nats-server ]; then
    cp deploy/nats/*.conf "$ctx/config/"
  fi
  if [ "$name" = router ]; then
    cp deploy/policy.yaml "$ctx/config/"
  fi
  # (The legacy builder's deprecation notice is dropped; other messages
  # are shown when the build fails.)
  if ! msg=$(DOCKER_BUILDKIT=0 docker build -q -f deploy/Dockerfile -t "botmesh/$name:$tag" "$ctx" 2>&1 >/dev/null); then
    echo "$msg" >&2
    exit 1
  fi
  echo "botmesh/$name:$tag"
done
