#!/usr/bin/env bash
# The project's test command (named in README.md): every crate's tests. The node's tests turn
# on its optional `quic` feature (a dev-dependency on itself), so the QUIC transport test runs
# here too and the node is built once.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
