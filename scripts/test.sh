#!/usr/bin/env bash
# The project's test command (named in README.md): every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
