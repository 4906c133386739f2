#!/usr/bin/env bash
# Every test of the project: unit, property and integration tests. The integration tests run
# against Apache Kafka 4.1.1 (KRaft) and a real chronyd NTP server, installed if missing and
# started by scripts/testenv.sh: one single-node broker shared by most tests, then a three-node
# cluster (the docker-compose configuration) for the replication and failover tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/testenv.sh run -- cargo test --locked --all-features "$@"
