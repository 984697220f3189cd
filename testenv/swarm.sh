#!/usr/bin/env bash
# Test scaffolding, never product code. A 3-node Docker Swarm on this machine: each node a
# privileged docker:dind container (a stand-in when it cannot be pulled) on one bridge network,
# node1 the manager (labelled slipway.db=true, so the database lives there), node2 and node3
# workers. Images reach the nodes through a registry on this machine, which the nodes name by
# the bridge's gateway address (insecure: plain HTTP on a private network).
#
#   testenv/swarm.sh up REGISTRY_PORT   # a new swarm (an earlier run's nodes, left by a kill, are
#                                       # taken down first); prints the manager's address
#   testenv/swarm.sh down               # removes the nodes and the network; each node's engine
#                                       # data volume stays, emptied of all but its images, so
#                                       # the next run pulls nothing it already has
#   testenv/swarm.sh purge              # down, and the volumes too
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
NODE_IMAGE=${SLIPWAY_SWARM_NODE_IMAGE:-docker:26.1.5-dind}
NETWORK=slipway-swarm
NODES=(node1 node2 node3)

log() { printf '%s [swarm] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
node() { docker exec "slipway-swarm-$1" docker "${@:2}"; }
node_ip() { docker inspect -f "{{(index .NetworkSettings.Networks \"$NETWORK\").IPAddress}}" "slipway-swarm-$1"; }
gateway() { docker network inspect -f '{{(index .IPAM.Config 0).Gateway}}' "$NETWORK"; }

up() {
  local registry_port=$1 n i gw token
  # A run killed before its `down` leaves its stack on the nodes, with a database initialised
  # under another password: every run starts from nodes that hold nothing but images.
  down
  bash "$here/standins.sh" "$NODE_IMAGE"
  docker network create "$NETWORK" >/dev/null
  gw=$(gateway)
  for n in "${NODES[@]}"; do
    docker run -d --privileged --name "slipway-swarm-$n" --hostname "$n" --network "$NETWORK" \
      -v "slipway-swarm-$n:/var/lib/docker" "$NODE_IMAGE" --insecure-registry "$gw:$registry_port" >/dev/null
  done
  for n in "${NODES[@]}"; do
    for i in $(seq 1 60); do
      node "$n" info >/dev/null 2>&1 && break
      ((i < 60)) || { docker logs --tail 20 "slipway-swarm-$n" >&2; log "the engine in $n did not start"; return 1; }
      sleep 0.5
    done
    # A node whose container was gone before `down` could leave keeps the old swarm in its volume.
    node "$n" swarm leave --force >/dev/null 2>&1 || true
  done
  log "swarm init on node1 ($(node_ip node1))"
  node node1 swarm init --advertise-addr "$(node_ip node1)" >/dev/null
  token=$(node node1 swarm join-token -q worker)
  for n in node2 node3; do
    node "$n" swarm join --token "$token" "$(node_ip node1):2377" >/dev/null
  done
  node node1 node update --label-add slipway.db=true node1 >/dev/null
  for i in $(seq 1 60); do
    [[ "$(node node1 node ls -q --filter role=worker | wc -l)" == 2 ]] && break
    sleep 0.5
  done
  log "3 nodes ready; images from $gw:$registry_port"
  node_ip node1
}

down() {
  local n
  for n in "${NODES[@]}"; do
    # What the next run must not find: the swarm, its tasks, the database's volume, networks.
    docker exec "slipway-swarm-$n" sh -c 'docker swarm leave --force >/dev/null 2>&1
      ids=$(docker ps -aq); [ -z "$ids" ] || docker rm -f $ids >/dev/null
      docker volume prune -af >/dev/null; docker network prune -f >/dev/null' 2>/dev/null || true
    docker rm -f "slipway-swarm-$n" >/dev/null 2>&1 || true
  done
  docker network rm "$NETWORK" >/dev/null 2>&1 || true
}

purge() {
  local n
  down
  for n in "${NODES[@]}"; do docker volume rm "slipway-swarm-$n" >/dev/null 2>&1 || true; done
}

case "${1:-}" in
  up) up "${2:?registry port}" ;;
  down) down ;;
  purge) purge ;;
  ip) node_ip "${2:?node name}" ;;
  gateway) gateway ;;
  *) echo "usage: testenv/swarm.sh up REGISTRY_PORT | down | purge | ip NODE | gateway" >&2; exit 2 ;;
esac
