#!/usr/bin/env bash
# Every test of the project: unit, property and integration tests. The integration tests run
# against Apache Kafka 4.1.1 (KRaft) and a real chronyd NTP server, installed if missing and
# started by scripts/testenv.sh:
#   1. one single-node broker shared by all tests but the cluster ones;
#   2. the three-node cluster of docker/docker-compose.kafka.yml for tests/cluster_*.rs
#      (replication, leader failover, rolling restarts). Those targets are declared `test = false`
#      in Cargo.toml, so a plain `cargo test` does not run them against one node.
# Arguments are passed to both `cargo test` runs (e.g. a test-name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/testenv.sh run -- cargo test --locked --all-features "$@"
cluster=()
for f in tests/cluster_*.rs; do
    [ -e "$f" ] && cluster+=(--test "$(basename "$f" .rs)")
done
if [ ${#cluster[@]} -gt 0 ]; then
    scripts/testenv.sh run --brokers 3 -- cargo test --locked --all-features "${cluster[@]}" "$@"
fi
