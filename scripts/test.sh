#!/usr/bin/env bash
# Every test of the project: unit, property and integration tests, the latter against a real Tansu
# broker and a real chronyd NTP server started (and installed if missing) by scripts/testenv.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/testenv.sh run -- cargo test --locked --all-features "$@"
