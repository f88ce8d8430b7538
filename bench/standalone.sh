#!/usr/bin/env bash
# Side-by-side benchmark of a standalone zkernel against a standalone Apache ZooKeeper 3.8
# on this machine, A B A B, with ../shared/bench (zkbench, run-zookeeper.sh, compare.py).
# Both servers fsync before acknowledging writes (ZooKeeper forceSync=yes, zkernel's LMDB
# storage with forceSync on), both data dirs on the same file system.
#
#   bench/standalone.sh [ROUNDS] [DURATION] [OPS]     defaults: 3 10 get,set,create,mixed
#
# Prints compare.py's Markdown table (medians, min-max, B/A ratios, server CPU per op).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
rounds=${1:-3}
duration=${2:-10}
ops=${3:-get,set,create,mixed}
work=$(mktemp -d /tmp/zkernel-bench.XXXXXX)
cp -r "$shared/bench/." "$work/bench"
make -s -C "$work/bench" >/dev/null
zk_base=12180
zkernel_port=12190

cleanup() {
    [ -n "${ZKERNEL_PID:-}" ] && kill "$ZKERNEL_PID" 2>/dev/null || true
    "$work/bench/run-zookeeper.sh" --stop --dir "$work/zk" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

eval "$("$work/bench/run-zookeeper.sh" --port-base "$zk_base" --dir "$work/zk" \
        --cfg clientPortListenBacklog=1024)"
cat >"$work/zoo.cfg" <<CFG
tickTime=2000
dataDir=$work/zkernel-data
clientPort=$zkernel_port
clientPortAddress=127.0.0.1
maxClientCnxns=0
clientPortListenBacklog=1024
forceSync=yes
CFG
python3 -m kernel serve --config "$work/zoo.cfg" --log-level WARNING \
    >"$work/zkernel.log" 2>&1 &
ZKERNEL_PID=$!
for _ in $(seq 100); do
    if printf srvr | timeout 1 python3 -c "
import socket,sys; s=socket.create_connection(('127.0.0.1',$zkernel_port),1)
s.sendall(b'srvr'); sys.exit(0 if b'Mode' in s.recv(4096) else 1)" 2>/dev/null; then break; fi
    sleep 0.1
done
"$work/bench/compare.py" --a "$ZK_CONNECT" --a-label zookeeper-3.8 --a-pid "$ZK_PIDS" \
    --b "127.0.0.1:$zkernel_port" --b-label zkernel --b-pid "$ZKERNEL_PID" \
    --ops "$ops" --rounds "$rounds" --zkbench "$work/bench/zkbench" \
    -- --connections 4 --outstanding 64 --duration "$duration" --warmup 2 --value-size 100
