#!/usr/bin/env bash
# The whole test suite: installs and starts the real broker (scripts/broker.sh), then runs the
# formatting and lint checks and every test, unit and real-broker integration tests alike.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/broker.sh start
export THREATSIFT_TEST_BROKERS="127.0.0.1:${THREATSIFT_BROKER_PORT:-19092}"

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
