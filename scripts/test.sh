#!/usr/bin/env bash
# The whole test suite: installs and starts the real broker (scripts/broker.sh), installs the
# deploy-pack tools (scripts/ops-tools.sh: Debian's prometheus and promtool, kubernetes-validate),
# then runs the formatting and lint checks and every test, unit and real-broker integration tests
# alike (tests/prometheus.rs starts its own Prometheus; tests/ops.rs runs promtool and the
# offline Kubernetes/Compose checks).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/broker.sh start
scripts/ops-tools.sh install
export THREATSIFT_TEST_BROKERS="127.0.0.1:${THREATSIFT_BROKER_PORT:-19092}"

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
