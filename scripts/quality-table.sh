#!/usr/bin/env bash
# The quality table of README "Collective intelligence, measured": every target of the shipped
# series under both mechanism versions, through `chorus devnet --replay` (no network, every bundle
# on time, byte-reproducible). Prints a Markdown table; each row's command is printed beside it.
#   bash scripts/quality-table.sh            # release build of chorus, about a minute per row
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p chorus
bin="${CARGO_TARGET_DIR:-target}/release/chorus"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "| series | target | mechanism | network / best | network / average | best mix / best | network / best mix | beats best in | noisy worker's reward / best's | command |"
echo "|---|---|---|---|---|---|---|---|---|---|"
row() {
  local series="$1" target="$2" mech="$3"; shift 3
  local cmd=(devnet --replay --epochs all --target "$target" --mechanism "$mech" "$@")
  "$bin" --json "${cmd[@]}" --out "$out/run" >"$out/summary.json"
  python3 - "$series" "$target" "$mech" "chorus ${cmd[*]}" "$out/summary.json" <<'PY'
import json, sys
series, target, mech, cmd, path = sys.argv[1:]
t = json.load(open(path))["topics"][0]
f = lambda v: "-" if v is None else f"{v:.3f}"
best = t["best_worker"]
rewards = {w["name"]: int(w["rewards"]) for w in t["workers"]}
noisy = next((w["name"] for w in t["workers"] if w["model"] == "noisy"), None)
ratio = rewards[noisy] / rewards[best] if noisy and best and rewards.get(best) else None
share = t["network_beats_best_share"]
print(f"| {series} | {target} | {mech} | {f(t['network_vs_best'])} | {f(t['network_vs_average'])} | "
      f"{f(t['best_mix_vs_best'])} | {f(t['network_vs_best_mix'])} | "
      f"{'-' if share is None else f'{100*share:.1f} %'} | {f(ratio)} | `{cmd}` |")
PY
}
for target in range close return; do
  for mech in allora-v0.6 allora-mad; do
    row "EUR/USD 1h" "$target" "$mech"
  done
done
for target in range close return; do
  for mech in allora-v0.6 allora-mad; do
    row "BTC/USD 1mo" "$target" "$mech" --data data/btcusd_1mo.csv --warmup 20
  done
done
