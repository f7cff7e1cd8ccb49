#!/usr/bin/env bash
# The long chaos run (not in CI; minutes): the release daemon drains MESSAGES messages (ECS
# events, multi-line messages and unparseable ones, produced first in real multi-record
# batches) and is SIGKILLed KILLS times at random points, restarted each time, then left to
# finish. Every input message must be accounted for (its records, or its DLQ entry); the run
# prints the losses (must be 0), the repeated records per kill and the work each kill replayed.
#
#   scripts/chaos.sh [MESSAGES] [KILLS] [COMMIT_INTERVAL]     (1000000 20 1s)
#
# THREATSIFT_CHAOS_SEED=N replays the kill points of an earlier run (each run prints its seed).
# It runs the ignored test `sigkill_twenty_times_during_a_million_messages` of tests/chaos.rs,
# built in release, against a tansu broker of its own on a free port (in-memory storage holds
# every message and record; the run's topics would otherwise stay in the shared test broker's
# memory), stopped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export THREATSIFT_CHAOS_MESSAGES="${1:-1000000}"
export THREATSIFT_CHAOS_KILLS="${2:-20}"
export THREATSIFT_CHAOS_COMMIT_INTERVAL="${3:-1s}"

tansu=$(scripts/broker.sh path)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp -t threatsift-chaos-broker.XXXXXX.log)
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "memory://tansu/" >"$log" 2>&1 </dev/null &
broker=$!
trap 'kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "chaos.sh: the broker did not start; see $log" >&2; exit 1; }
export THREATSIFT_TEST_BROKERS="127.0.0.1:$port"

echo "chaos.sh: $THREATSIFT_CHAOS_MESSAGES messages, $THREATSIFT_CHAOS_KILLS kills, commit interval $THREATSIFT_CHAOS_COMMIT_INTERVAL, broker 127.0.0.1:$port" >&2
cargo test --release --locked --test chaos sigkill_twenty_times_during_a_million_messages -- \
    --ignored --nocapture
