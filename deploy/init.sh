#!/bin/sh
# A new network's files: genesis, validator keys and one node config per validator.
#
#   deploy/init.sh DIR IP:P2P_PORT:API_PORT...
#
# writes DIR/genesis.toml, DIR/keys/validator-<i>.key and DIR/node-<i>.toml (validator i at
# the i-th address; every node bootstraps from all the others), and DIR/bootstrap.list (every
# validator's address, quoted, for the configs of nodes that join later). Run once: if DIR/genesis.toml
# exists nothing is changed (a restarted compose init step keeps the network it made).
#
# Environment:
#   CHORUS           the chorus binary (default: chorus on PATH)
#   LISTEN_ANY=1     listen on 0.0.0.0 instead of the node's own IP (containers)
#   CHECKPOINT_MS    checkpoint period written into the genesis (default 10000)
#   MIN_EPOCH_MS     smallest topic epoch the network accepts (default 60000, Allora's 12 blocks)
#   NETWORK          network name (default chorus-compose)
set -eu

CHORUS="${CHORUS:-chorus}"
dir="${1:?usage: init.sh DIR IP:P2P_PORT:API_PORT...}"
shift
[ "$#" -ge 1 ] || { echo "init.sh: give at least one IP:P2P_PORT:API_PORT" >&2; exit 2; }

if [ -e "$dir/genesis.toml" ]; then
    echo "init.sh: $dir/genesis.toml exists; keeping the network it describes"
    exit 0
fi

for node in "$@"; do
    case "$node" in
        *:*:*) ;;
        *) echo "init.sh: '$node' is not IP:P2P_PORT:API_PORT" >&2; exit 2 ;;
    esac
done

"$CHORUS" genesis new --validators "$#" --out "$dir" --network "${NETWORK:-chorus-compose}"
# The genesis is the network's constitution: its timing is set before anyone joins.
sed -i \
    -e "s/^checkpoint_period_ms = .*/checkpoint_period_ms = ${CHECKPOINT_MS:-10000}/" \
    -e "s/^min_epoch_length_ms = .*/min_epoch_length_ms = ${MIN_EPOCH_MS:-60000}/" \
    "$dir/genesis.toml"
grep -q "^checkpoint_period_ms = ${CHECKPOINT_MS:-10000}\$" "$dir/genesis.toml" || {
    echo "init.sh: could not set checkpoint_period_ms in $dir/genesis.toml" >&2
    exit 1
}

# Each node's address as others dial it.
i=0
addrs=""
for node in "$@"; do
    ip="${node%%:*}"
    rest="${node#*:}"
    p2p="${rest%%:*}"
    peer="$("$CHORUS" key show --peer-id --key "$dir/keys/validator-$i.key")"
    addrs="$addrs /ip4/$ip/tcp/$p2p/p2p/$peer"
    i=$((i + 1))
done
# Every validator's address, for configs of nodes that join later (setup.sh).
list=""
for a in $addrs; do list="$list\"$a\", "; done
echo "${list%, }" >"$dir/bootstrap.list"

i=0
for node in "$@"; do
    ip="${node%%:*}"
    rest="${node#*:}"
    p2p="${rest%%:*}"
    api="${rest#*:}"
    listen="$ip"
    if [ "${LISTEN_ANY:-0}" = 1 ]; then listen="0.0.0.0"; fi
    bootstrap=""
    j=0
    for a in $addrs; do
        if [ "$j" -ne "$i" ]; then bootstrap="$bootstrap\"$a\", "; fi
        j=$((j + 1))
    done
    cat >"$dir/node-$i.toml" <<TOML
# Validator $i of the network in genesis.toml (written by deploy/init.sh).
[node]
data_dir = "data-$i"
key = "keys/validator-$i.key"
genesis = "genesis.toml"

[network]
listen = ["/ip4/$listen/tcp/$p2p"]
bootstrap = [${bootstrap%, }]

[api]
listen = "$listen:$api"
admin_token_file = "data-$i/admin.token"

[validator]
enabled = true
TOML
    "$CHORUS" config validate "$dir/node-$i.toml" >/dev/null
    i=$((i + 1))
done
echo "init.sh: $# validators in $dir (node-0.toml … node-$(($# - 1)).toml)"
