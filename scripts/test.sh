#!/usr/bin/env bash
# The project's test command (named in README.md): every crate's tests, then the node's
# transport test and unit tests again with the optional `quic` feature.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
cargo test -p chorus-node --features quic --locked --lib --test quic
