#!/bin/sh
# What a newcomer with a model server does, scripted: on a network made by init.sh, validator
# 0 creates a topic and funds a new worker key; the worker registers as inferer and reputer
# (with stake); a node config for it is written. Then `chorus node run --config WORKER_TOML`.
#
#   deploy/setup.sh DIR
#
# Environment:
#   CHORUS        the chorus binary (default: chorus on PATH)
#   NODE          REST API of validator 0 (default http://127.0.0.1:8080)
#   MODEL         base URL of the model server (default http://127.0.0.1:8000)
#   WORKER        the worker node's IP:P2P_PORT:API_PORT (default 127.0.0.1:4100:8100)
#   LISTEN_ANY=1  the worker listens on 0.0.0.0 (containers)
#   EPOCH_MS      the topic's epoch (default 60000); the window is half of it, the truth
#                 lag one epoch
#   START_IN_MS   the topic's epoch 0 starts this long after now (default 30000: a topic must
#                 not start before the checkpoint that creates it)
# Each step waits for the checkpoint that applies it (--wait) and stops the script if the
# ledger refuses it. Rerunning after success changes nothing.
set -eu

CHORUS="${CHORUS:-chorus}"
dir="${1:?usage: setup.sh DIR}"
NODE="${NODE:-http://127.0.0.1:8080}"
MODEL="${MODEL:-http://127.0.0.1:8000}"
WORKER="${WORKER:-127.0.0.1:4100:8100}"
EPOCH_MS="${EPOCH_MS:-60000}"
out="$dir/worker.toml"

if [ -e "$out" ]; then
    echo "setup.sh: $out exists; the worker is set up"
    exit 0
fi

echo "setup.sh: waiting for $NODE"
tries=0
until "$CHORUS" status --node "$NODE" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -le 300 ] || { echo "setup.sh: $NODE never answered" >&2; exit 1; }
    sleep 1
done

tx="--node $NODE --token-file $dir/data-0/admin.token --wait"
v0="$dir/keys/validator-0.key"
key="$dir/keys/worker.key"
[ -e "$key" ] || "$CHORUS" key new --out "$key" >/dev/null
addr="$("$CHORUS" key show --key "$key")"

# The topic: "ETH" for the model server's token, the price EPOCH_MS ahead.
start_ms="$(($(date +%s) * 1000 + ${START_IN_MS:-30000}))"
cat >"$dir/topic.toml" <<TOML
name = "ETH price, one epoch ahead"
token = "ETH"
loss = { method = "mse" }
start_ms = $start_ms
epoch_length_ms = $EPOCH_MS
submission_window_ms = $((EPOCH_MS / 2))
ground_truth_lag_ms = $EPOCH_MS
p_norm = 3.0
alpha_regret = 0.1
epsilon = 0.01
merit_sortition_alpha = 0.1
active_inferer_quantile = 0.25
active_forecaster_quantile = 0.25
active_reputer_quantile = 0.25
TOML
topic="$("$CHORUS" topic create --spec "$dir/topic.toml" --key "$v0" $tx | sed -n 's/.*topic id \([0-9][0-9]*\).*/\1/p')"
[ -n "$topic" ] || { echo "setup.sh: no topic id in the answer" >&2; exit 1; }
echo "setup.sh: topic $topic created"
"$CHORUS" transfer "$addr" 1_000_000_000_000_000_000_000 --key "$v0" $tx >/dev/null
"$CHORUS" register "$topic" worker --key "$key" $tx >/dev/null
"$CHORUS" register "$topic" reputer --key "$key" $tx >/dev/null
"$CHORUS" stake add "$topic" 50_000 --key "$key" $tx >/dev/null
echo "setup.sh: worker $addr funded, registered as worker and reputer, stake added"

ip="${WORKER%%:*}"
rest="${WORKER#*:}"
p2p="${rest%%:*}"
api="${rest#*:}"
listen="$ip"
if [ "${LISTEN_ANY:-0}" = 1 ]; then listen="0.0.0.0"; fi
bootstrap="$(cat "$dir/bootstrap.list")"
cat >"$out.tmp" <<TOML
# The worker and reputer of topic $topic (written by deploy/setup.sh): Allora's
# basic-coin-prediction-node contract, unchanged, at $MODEL.
[node]
data_dir = "data-worker"
key = "keys/worker.key"
genesis = "genesis.toml"

[network]
listen = ["/ip4/$listen/tcp/$p2p"]
bootstrap = [$bootstrap]

[api]
listen = "$listen:$api"
admin_token_file = "data-worker/admin.token"

[[worker]]
topic = "$topic"
model = { kind = "http", url = "$MODEL/inference/{Token}", params = { Token = "ETH" } }

[[reputer]]
topic = "$topic"
truth = { kind = "http", url = "$MODEL/truth/{Token}/{Timestamp}", params = { Token = "ETH" } }
TOML
"$CHORUS" config validate "$out.tmp" >/dev/null
mv "$out.tmp" "$out"
echo "setup.sh: wrote $out; start it with: chorus node run --config $out"
