#!/usr/bin/env bash
# Test scaffolding, never product code. Brings a fresh machine to the point where `vitest`
# can run every test for real: Docker engine, base images (real or stand-in), the Dagger
# module's dependencies, Trivy and the test-DB writer, actionlint, a Postgres for the unit
# tests, and a Dagger engine. Idempotent and quick when everything is already there.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
state="$repo/.testenv"
tools=${SLIPWAY_TOOLS_CACHE:-$HOME/.cache/slipway-tools}
pg_container=slipway-test-postgres
pg_port=${SLIPWAY_TEST_PG_PORT:-55432}
actionlint_version=1.7.12

# shellcheck source=testenv/pins.sh
source "$here/pins.sh"

log() { printf '%s [setup] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

dagger_deps() {
  [[ -d "$repo/dagger/node_modules/@dagger.io/dagger" ]] && return 0
  log "installing the Dagger module's dependencies (npm ci --prefix dagger)"
  npm ci --prefix "$repo/dagger" --no-audit --no-fund >/dev/null
}

go_tools() {
  "$here/build-trivy.sh" >"$state/trivy-path"
  if [[ ! -x "$tools/trivydb" || "$here/trivydb/main.go" -nt "$tools/trivydb" ]]; then
    log "building the test vulnerability-DB writer"
    (cd "$here/trivydb" && go build -o "$tools/trivydb" .)
  fi
  echo "$tools/trivydb" >"$state/trivydb-path"
  if [[ ! -x "$tools/actionlint-$actionlint_version/actionlint" ]]; then
    log "building actionlint v$actionlint_version"
    GOBIN="$tools/actionlint-$actionlint_version" go install "github.com/rhysd/actionlint/cmd/actionlint@v$actionlint_version"
  fi
  echo "$tools/actionlint-$actionlint_version/actionlint" >"$state/actionlint-path"
}

# Whether something answers on 127.0.0.1:PORT.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Whether what holds 127.0.0.1:PORT is this project's own (a container an earlier run left, which
# testenv/stacks.sh or test_postgres replaces).
port_ours() { docker ps --filter "publish=$1" --format '{{.Names}}' | grep -qE '^(slipway|slipwayt)'; }

# The test Postgres's port: SLIPWAY_TEST_PG_PORT, else 55432, else (that taken by something
# else) the first free one above it, said in one line; the tests read it from .testenv/database-url.
choose_pg_port() {
  local port
  [[ -z "${SLIPWAY_TEST_PG_PORT:-}" ]] || { echo "$SLIPWAY_TEST_PG_PORT"; return 0; }
  for port in $(seq 55432 55532); do
    if ! port_taken "$port" || port_ours "$port"; then
      ((port == 55432)) || log "127.0.0.1:55432 is taken by another program: the test Postgres uses $port (SLIPWAY_TEST_PG_PORT sets it)"
      echo "$port"
      return 0
    fi
  done
  log "no free port in 127.0.0.1:55432-55532 for the test Postgres: set SLIPWAY_TEST_PG_PORT to a free one"
  return 1
}

# The release tests' stack publishes README's port (8000, SLIPWAY_TEST_HTTP_PORT): taken by
# something not ours (a quickstart of one's own), it is refused here in one line naming the fix,
# not as Docker's "address already in use" half-way through the suite.
check_http_port() {
  local port=${SLIPWAY_TEST_HTTP_PORT:-8000}
  if port_taken "$port" && ! port_ours "$port"; then
    log "127.0.0.1:$port is taken by another program (your own stack?): the release tests publish their stack there; stop it, or run with SLIPWAY_TEST_HTTP_PORT=<a free port>"
    return 1
  fi
}

test_postgres() {
  local image _
  image=$(pin_postgres)
  if [[ -z "$(docker ps -q -f "name=^${pg_container}$")" ]]; then
    docker rm -f "$pg_container" >/dev/null 2>&1 || true
    pg_port=$(choose_pg_port) || return 1
    log "starting $image as $pg_container on 127.0.0.1:$pg_port for the unit tests"
    docker run -d --name "$pg_container" -p "127.0.0.1:$pg_port:5432" \
      -e POSTGRES_USER=postgres -e POSTGRES_PASSWORD=slipway-test -e POSTGRES_DB=slipway_test \
      --tmpfs /var/lib/postgresql/data "$image" >/dev/null
  fi
  # The port it publishes (a container kept from an earlier run keeps its own).
  pg_port=$(docker port "$pg_container" 5432/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n 1)
  for _ in $(seq 1 60); do
    if docker exec "$pg_container" pg_isready -h 127.0.0.1 -U postgres >/dev/null 2>&1; then
      echo "postgres://postgres:slipway-test@127.0.0.1:$pg_port/slipway_test?sslmode=disable" >"$state/database-url"
      return 0
    fi
    sleep 1
  done
  log "test Postgres did not become ready; docker logs $pg_container"
  return 1
}

main() {
  mkdir -p "$state" "$tools"
  "$here/install-host.sh"
  dagger_deps
  "$here/standins.sh"
  go_tools
  test_postgres
  check_http_port
  "$here/dagger-engine.sh"
  log "test environment ready"
}

main "$@"
