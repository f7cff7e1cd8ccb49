#!/usr/bin/env bash
# A real Kafka-protocol broker on 127.0.0.1 for the tests and for trying the daemon by hand:
# tansu 0.6.0 (Apache-2.0, a Kafka-compatible broker written in Rust) with in-memory storage.
#
#   scripts/broker.sh start    install if needed, start if not running, create the topics (default)
#   scripts/broker.sh install  only install tansu (cargo install, ~15 minutes the first time)
#   scripts/broker.sh stop     stop the broker this script started
#   scripts/broker.sh status   exit 0 when the broker answers
#
# Known tansu 0.6.0 behaviours the tests work around (real Kafka does neither): a fetch from an
# offset inside a multi-record batch returns the *next* batch (a consumer resuming mid-batch
# skips records), so tests produce one record per batch; and a member joining while a killed
# member's session is still open can be handed an empty assignment, which the daemon's
# assignment watchdog repairs by rejoining.
#
# Safe to run any number of times. Port: THREATSIFT_BROKER_PORT (default 19092). State (pid, log)
# lives in .broker/ in the repository. Tansu does not create topics on first use, so `start`
# creates the daemon's default topics; tests create their own.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${THREATSIFT_BROKER_PORT:-19092}
STATE=${THREATSIFT_BROKER_DIR:-$ROOT/.broker}
VERSION=0.6.0
TOPICS=("firewall:4" "proxy:2" "threats:4" "threatsift-dlq:1")

log() { printf 'broker.sh: %s\n' "$*" >&2; }

find_tansu() {
  local candidate
  for candidate in "$(command -v tansu 2>/dev/null || true)" "$HOME/.cargo/bin/tansu"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version 2>/dev/null | grep -q "$VERSION"; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

install() {
  if find_tansu >/dev/null; then
    return 0
  fi
  log "installing tansu $VERSION with cargo (in-memory storage; about 15 minutes on 2 cores)"
  cargo install tansu --version "$VERSION" --locked --features dynostore
  find_tansu >/dev/null || { log "tansu $VERSION not found after install"; exit 1; }
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
  start) start ;;
  stop) stop ;;
  status) answers ;;
  *) echo "usage: $0 [start|install|stop|status]" >&2; exit 2 ;;
esac
