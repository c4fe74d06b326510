#!/usr/bin/env bash
# The node's dashboard in a real browser (run by CI): a short devnet with --keep, the dashboard
# of node 0 opened in headless Chromium (Debian's package, installed here when missing) and
# driven over the DevTools protocol by scripts/browser_check.py: it waits for live data, checks
# that the page shows the same combined value as GET /v1/topics/1/inference for the epoch it
# displays, that both charts and the tables rendered, and that no console error or uncaught
# exception happened, at desktop and phone sizes. Screenshots are saved under the run directory
# (default target/browser-test; BROWSER_TEST_OUT to change it).
#
# Only loopback is contacted: the devnet's nodes listen on 127.0.0.1, Chromium opens only the
# page the node serves, with its background networking off.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${BROWSER_TEST_OUT:-target/browser-test}"
rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing Debian's chromium (headless browser for this test)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q chromium >"$out/apt.log" 2>&1; then
        apt-get update -q >>"$out/apt.log" 2>&1
        apt-get install -y -q chromium >>"$out/apt.log" 2>&1
    fi
fi

echo "== building chorus"
# The binary the test suite built (same features, so nothing is compiled again after
# scripts/test.sh; a plain `cargo build` would rebuild the node without its test features).
cargo test -q --workspace --locked --no-run
bin="${CARGO_TARGET_DIR:-target}/debug/chorus"

echo "== devnet (40 epochs, 8 nodes) with --keep"
"$bin" devnet --epochs 40 --nodes 8 --target range --warmup 10 --keep --out "$out/devnet" \
    >"$out/devnet.log" 2>&1 &
devnet=$!
cleanup() {
    kill -INT "$devnet" 2>/dev/null || true
    wait "$devnet" 2>/dev/null || true
}
trap cleanup EXIT

url=""
for _ in $(seq 1 600); do
    url="$(sed -n 's/^dashboard: *\(http:[^ ]*\).*/\1/p' "$out/devnet.log" | head -n1)"
    [ -n "$url" ] && break
    if ! kill -0 "$devnet" 2>/dev/null; then
        echo "the devnet ended before it printed its dashboard URL:" >&2
        tail -n 20 "$out/devnet.log" >&2
        exit 1
    fi
    sleep 0.5
done
if [ -z "$url" ]; then
    echo "no dashboard URL after 300 s" >&2
    exit 1
fi
echo "   dashboard at $url"

echo "== opening the dashboard in headless Chromium"
python3 scripts/browser_check.py "$out" "$url"
