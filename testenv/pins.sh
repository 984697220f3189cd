#!/usr/bin/env bash
# Sourced by the test-environment scripts: the base images the product pins, read from the
# product files themselves so the test environment can never drift from them.
# shellcheck disable=SC2016 # the patterns match a literal ${...} in the compose file
pins_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pin_node() { sed -n 's/^ARG NODE_IMAGE=//p' "$pins_repo/Dockerfile"; }
pin_nginx() { sed -n 's/^ARG NGINX_IMAGE=//p' "$pins_repo/proxy/Dockerfile"; }
pin_postgres() { sed -n 's/.*\${POSTGRES_IMAGE:-\([^}]*\)}.*/\1/p' "$pins_repo/docker-compose.prod.yml" | head -n1; }
