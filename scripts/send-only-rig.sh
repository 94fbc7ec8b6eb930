#!/usr/bin/env bash
# A send-only "NIC" for `rawlimit --send-only 10.77.0.2:PORTBASE` (benches/src/bin/rawlimit.rs):
# what sending costs when nothing on this host receives, with and without UDP GSO.
#
#   scripts/send-only-rig.sh up|down|status      (as root)
#
# up:     netns cc-sendonly; veth pair cc-so0 (here, 10.77.0.1/24) and cc-so1 (in the namespace,
#         10.77.0.2/24), both up; a permanent neighbour entry for 10.77.0.2 on cc-so0 (no ARP);
#         IPv6 off on both ends (no router solicitations or MLD reports in the counter); in the
#         namespace an nftables `table netdev` whose `ingress` chain on cc-so1 counts and drops
#         everything (`counter drop`). Tears any previous rig down first, so it is idempotent.
# down:   removes all of it (deleting the namespace deletes both ends of the veth pair).
# status: one line of key=value numbers for scripts to parse:
#           dropped_packets=N dropped_bytes=M veth_tx_packets=P veth_tx_dropped=D
#         the nft counter (what reached cc-so1's ingress and was dropped), and cc-so0's own
#         counters (packets the veth took, and those it dropped before the other end's ingress).
#
# Why veth + netdev ingress drop: on loopback the sender also pays for delivering every datagram
# into a receiving socket (and, with GSO, for splitting the message there), which a real NIC
# does not charge. A veth advertises UDP segmentation offload (tx-udp-segmentation), so a GSO
# message crosses it as one skb, and the netdev ingress hook drops it there before the stack
# ever segments it: like a NIC with USO, the sender pays once per message. The counter then
# counts GSO messages, not datagrams (its bytes are the datagrams' payload plus one set of
# headers per message). The simpler models are not available on the kernels this runs on: no
# dummy device (CONFIG_DUMMY), no tc matchall or netem.
set -euo pipefail

NS=cc-sendonly
HOST_DEV=cc-so0
NS_DEV=cc-so1
HOST_IP=10.77.0.1
NS_IP=10.77.0.2
TABLE=cc_sendonly

die() {
  echo "send-only-rig: $*" >&2
  exit 1
}

# Run one step of `up`; if it fails, say which, take down what was made, and stop.
step() {
  if ! "$@"; then
    echo "send-only-rig: step failed: $*" >&2
    down >/dev/null 2>&1 || true
    exit 1
  fi
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (netns, veth and nft need CAP_NET_ADMIN)"
  command -v ip >/dev/null || die "ip (iproute2) not found"
  command -v nft >/dev/null || die "nft (nftables) not found"
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$NS"; }

down() {
  if ns_exists; then
    ip netns del "$NS" || die "could not delete netns $NS"
  fi
  # Left over from a half-made rig: the host end without its namespace.
  if ip link show "$HOST_DEV" >/dev/null 2>&1; then
    ip link del "$HOST_DEV" || die "could not delete $HOST_DEV"
  fi
  ! ns_exists || die "netns $NS still exists"
  ! ip link show "$HOST_DEV" >/dev/null 2>&1 || die "$HOST_DEV still exists"
}

up() {
  down
  step ip netns add "$NS"
  step ip link add "$HOST_DEV" type veth peer name "$NS_DEV" netns "$NS"
  # Before the links come up, so neither end sends IPv6 autoconfiguration traffic.
  if [ -e /proc/sys/net/ipv6 ]; then
    step sysctl -q -w "net.ipv6.conf.$HOST_DEV.disable_ipv6=1"
    step ip netns exec "$NS" sysctl -q -w "net.ipv6.conf.$NS_DEV.disable_ipv6=1"
  fi
  step ip addr add "$HOST_IP/24" dev "$HOST_DEV"
  step ip netns exec "$NS" ip addr add "$NS_IP/24" dev "$NS_DEV"
  step ip netns exec "$NS" ip link set lo up
  step ip netns exec "$NS" ip link set "$NS_DEV" up
  step ip link set "$HOST_DEV" up
  local mac
  mac=$(ip netns exec "$NS" cat "/sys/class/net/$NS_DEV/address") || mac=
  [ -n "$mac" ] || step false "read $NS_DEV's MAC address"
  step ip neigh replace "$NS_IP" lladdr "$mac" dev "$HOST_DEV" nud permanent
  step ip netns exec "$NS" nft -f - <<EOF
table netdev $TABLE {
  chain ingress {
    type filter hook ingress device "$NS_DEV" priority 0; policy accept;
    counter drop
  }
}
EOF
  status >/dev/null || { down >/dev/null 2>&1 || true; die "rig made, but its counter cannot be read"; }
  echo "send-only-rig: up: $HOST_DEV $HOST_IP/24 -> $NS_DEV $NS_IP/24 (netns $NS), neighbour $NS_IP at $mac, ingress drop counter in netdev $TABLE"
}

status() {
  ns_exists || die "rig is down (no netns $NS); run: $0 up"
  local rule packets bytes
  rule=$(ip netns exec "$NS" nft list chain netdev "$TABLE" ingress) ||
    die "cannot list nft chain netdev $TABLE ingress in netns $NS"
  packets=$(sed -n 's/.*counter packets \([0-9]*\) bytes \([0-9]*\).*/\1/p' <<<"$rule")
  bytes=$(sed -n 's/.*counter packets \([0-9]*\) bytes \([0-9]*\).*/\2/p' <<<"$rule")
  [ -n "$packets" ] && [ -n "$bytes" ] || die "no counter in nft chain netdev $TABLE ingress"
  local stats=/sys/class/net/$HOST_DEV/statistics
  [ -r "$stats/tx_packets" ] || die "$HOST_DEV is missing"
  echo "dropped_packets=$packets dropped_bytes=$bytes veth_tx_packets=$(cat "$stats/tx_packets") veth_tx_dropped=$(cat "$stats/tx_dropped")"
}

case "${1:-}" in
  up) need_root; up ;;
  down) need_root; down; echo "send-only-rig: down" ;;
  status) need_root; status ;;
  *) die "usage: $0 up|down|status" ;;
esac
