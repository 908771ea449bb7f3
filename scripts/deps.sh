#!/bin/sh
# Installs the Debian packages punchd needs to build and test, only those missing.
# Idempotent: a no-op (no apt-get at all) when everything is present.
# Works as root; uses sudo otherwise.
set -eu

PKGS="gcc make pkg-config libc6-dev python3 libev-dev libcjson-dev libsodium-dev libcmocka-dev
      libwslay-dev libhttp-parser-dev nettle-dev node-ws"
# Each concern that needs more (NAT lab, fuzzing, deploy checks...) lists its
# packages in its own scripts/deps.d/*.txt, one or more per line, # comments.
here=$(dirname "$0")
for f in "$here"/deps.d/*.txt; do
    [ -f "$f" ] || continue
    PKGS="$PKGS $(sed 's/#.*//' "$f" | tr '\n' ' ')"
done

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

# node may come from elsewhere than Debian (e.g. NodeSource): accept any. The
# tests' third-party WebSocket client is the ws library, Debian's node-ws.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"

[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "deps: missing packages:$missing; run as root or install sudo" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
