#!/usr/bin/env bash
# deploy-docker.sh: one-command Docker deployment of punchd. Builds the image
# from docker/Dockerfile, replaces a previous container of the same name, and
# runs the new one with --restart=always, the UDP and TCP ports published and
# config.json mounted read-only at /etc/punchd/config.json. See docs/deploy.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
prog=${0##*/}
name=punchd
image=punchd:latest
config=$here/config.json
port=""
port_given=0
mode=run
detach=0

usage() {
    cat <<EOF
usage: $prog [--port N] [--config FILE] [--name NAME] [--image TAG] [--detach]
       $prog --stop | --logs | --help

Builds the punchd image (docker/Dockerfile) and (re)starts the container:
  docker run --restart=always -p PORT:PORT/udp -p PORT:PORT/tcp
             -v FILE:/etc/punchd/config.json:ro ...
A container already named NAME is stopped (SIGTERM: clean WebSocket closes)
and removed first. Afterwards the logs are followed (Ctrl-C stops following;
the container keeps running) unless --detach is given.

  --port N       port to serve and publish (UDP and TCP); default: "port" of
                 the config file (3000 when absent); passed to punchd as
                 PUNCHD_PORT
  --config FILE  config to mount (default: config.json beside this script)
  --name NAME    container name (default: punchd)
  --image TAG    image tag (default: punchd:latest)
  --detach       start and return, without following the logs
  --stop         stop and remove the container NAME
  --logs         follow the logs of the container NAME
  --help         this text

"ws_port" (when not 0) is published as the TCP port, and "probe_port" (when
set) as a second UDP port.
EOF
}

die() {
    echo "$prog: $*" >&2
    exit 1
}

# Reads "port", "ws_port" and "probe_port" from the config (JSON) and prints
# them as three integers (0 = absent). python3 parses the JSON properly; hosts
# without it get a sed reading of the usual one-key-per-line layout.
config_ports() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$1" <<'PY'
import json, sys
path = sys.argv[1]
try:
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"cannot read {path}: {e}")
if not isinstance(cfg, dict):
    sys.exit(f"{path}: not a JSON object")
out = []
for key, dflt in (("port", 3000), ("ws_port", 0), ("probe_port", 0)):
    v = cfg.get(key, dflt)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
        sys.exit(f"{path}: {key} must be an integer from 0 to 65535")
    out.append(str(v))
print(" ".join(out))
PY
        return
    fi
    local key v out=""
    for key in port ws_port probe_port; do
        v=$(sed -n "s/.*\"$key\"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$1" | head -n 1)
        if [ -z "$v" ]; then
            # Present but not a plain integer: refuse rather than guess.
            if grep -q "\"$key\"[[:space:]]*:" "$1"; then
                echo "$1: $key must be an integer from 0 to 65535" >&2
                return 1
            fi
            if [ "$key" = port ]; then v=3000; else v=0; fi
        fi
        out="$out $v"
    done
    echo "$out"
}

valid_port() {
    [[ $1 =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

need_value() {
    [ "$2" -ge 2 ] || die "$1 needs a value (see --help)"
}

while [ $# -gt 0 ]; do
    case $1 in
    --port) need_value "$1" $#; port=$2; port_given=1; shift 2 ;;
    --port=*) port=${1#*=}; port_given=1; shift ;;
    --config) need_value "$1" $#; config=$2; shift 2 ;;
    --config=*) config=${1#*=}; shift ;;
    --name) need_value "$1" $#; name=$2; shift 2 ;;
    --name=*) name=${1#*=}; shift ;;
    --image) need_value "$1" $#; image=$2; shift 2 ;;
    --image=*) image=${1#*=}; shift ;;
    --detach | -d) detach=1; shift ;;
    --stop) mode=stop; shift ;;
    --logs) mode=logs; shift ;;
    --help | -h) usage; exit 0 ;;
    *) echo "$prog: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

if ! command -v docker >/dev/null 2>&1; then
    die "docker not found on PATH: install Docker (https://docs.docker.com/engine/install/) or see docs/deploy.md for systemd and make install"
fi

exists() {
    docker container inspect "$name" >/dev/null 2>&1
}

case $mode in
stop)
    if exists; then
        docker stop "$name" >/dev/null
        docker rm "$name" >/dev/null
        echo "$prog: stopped and removed $name"
    else
        echo "$prog: no container named $name"
    fi
    exit 0
    ;;
logs)
    exists || die "no container named $name"
    exec docker logs -f "$name"
    ;;
esac

if [ ! -f "$config" ] || [ ! -r "$config" ]; then
    die "config file $config not found: copy dist/config.sample.json there, or pass --config FILE"
fi
# docker -v needs an absolute path.
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")

ports=$(config_ports "$config") || die "cannot read the ports from $config"
read -r cfg_port ws_port probe_port <<<"$ports"
env_args=()
if [ "$port_given" = 1 ]; then
    valid_port "$port" || die "--port must be an integer from 1 to 65535 (got '$port')"
    env_args=(-e "PUNCHD_PORT=$port")
else
    port=$cfg_port
    [ "$port" != 0 ] || die "$config: port 0 (any free port) cannot be published: set a port, or pass --port N"
fi
tcp_port=$port
[ "$ws_port" = 0 ] || tcp_port=$ws_port
publish=(-p "$port:$port/udp" -p "$tcp_port:$tcp_port/tcp")
[ "$probe_port" = 0 ] || publish+=(-p "$probe_port:$probe_port/udp")

echo "$prog: building $image"
docker build -f "$here/docker/Dockerfile" -t "$image" "$here"

if exists; then
    echo "$prog: replacing the running container $name"
    docker stop "$name" >/dev/null
    docker rm "$name" >/dev/null
fi

docker run -d --name "$name" --restart=always \
    "${publish[@]}" \
    -v "$config:/etc/punchd/config.json:ro" \
    ${env_args[@]+"${env_args[@]}"} \
    "$image" >/dev/null

echo "$prog: $name is up: udp $port, tcp $tcp_port (http://HOST:$tcp_port/healthz)"
if [ "$detach" = 1 ]; then
    echo "$prog: logs: $prog --logs    stop: $prog --stop"
    exit 0
fi
echo "$prog: following the logs (Ctrl-C stops following; $name keeps running)"
exec docker logs -f "$name"
