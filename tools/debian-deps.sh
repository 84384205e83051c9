#!/usr/bin/env bash
# The Debian packages the tests need, in one list for `make test` and
# .ci/run. With no argument: install the missing ones when this user can
# (root, or sudo without a password), else stop at once with the one
# command to run. `tools/debian-deps.sh list` prints the list.
#
# Docker is not here: only the compose tests (make test-compose,
# make test-readme) and make up need it, and they say so.
set -euo pipefail

pkgs=(
  protobuf-compiler libprotobuf-dev # protoc and its well-known types (make proto-check)
  iproute2 util-linux               # ip and unshare (make test-mdns)
  chromium                          # the web chat in a real browser
  fonts-dejavu-core                 # the web page's text in Chromium
  fonts-noto-color-emoji            # the web page's emoji in Chromium
  fonts-wqy-zenhei                  # the web page's Chinese, Japanese and Korean text in Chromium
  prosody lua-unbound               # XMPP server
  ngircd inspircd                   # IRC servers
  etcd-server                       # etcd, for go-micro's etcd registry (e2e/etcd_test.go)
  opensmtpd                         # SMTP server for the mail output (gateway/adapter/adaptertest/smtpdtest)
  errbot python3-slixmpp            # the peer of make peerbench: Errbot 6.1.7 on XMPP (run by Debian's /usr/bin/python3)
  ca-certificates                   # the images' CA file
)

if [ "${1:-}" = list ]; then
  echo "${pkgs[@]}"
  exit 0
fi

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "The tests need these packages (Debian names): ${pkgs[*]}" >&2
  echo "This is not a Debian system: install their equivalents, then run the command again." >&2
  exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
  [ "$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "The tests need Debian packages that are missing here: ${missing[*]}" >&2
  echo "Install them (as root), then run the command again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

# Another install may hold apt's locks for a while: wait for them (bounded),
# and try the update again a few times.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq)
echo "installing Debian packages: ${missing[*]}" >&2
for try in 1 2 3; do
  "${apt[@]}" update && break
  [ "$try" = 3 ] && { echo "apt-get update failed 3 times" >&2; exit 1; }
  sleep 20
done
"${apt[@]}" install -y --no-install-recommends "${missing[@]}"

for p in "${missing[@]}"; do
  if [ "$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
    echo "$p is still not installed" >&2
    exit 1
  fi
done
