# Sourced by lib.sh: what the host scripts, the Dagger module and the deploy workflow must agree on, in one place.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables here are read by the scripts that source lib.sh
# dagger/src/commands/contract.ts is generated from this file (npm run contract) and a unit test
# fails when it is stale; deploy.yml's verify job sources it. Plain NAME='value' and NAME=(…)
# lines only, so the generator can read them without running bash.

# A Docker tag: letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-'.
TAG_PATTERN='^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'
# A release: a tag, optionally pinned to a registry digest (tag@sha256:<64 hex digits>).
REF_PATTERN='^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?$'
DIGEST_PATTERN='^sha256:[0-9a-f]{64}$'

# The post-switch guard's window, in seconds: 0 (off) to this (deploy.sh --guard, GUARD_SECONDS,
# dagger call deploy --guard).
GUARD_SECONDS_MAX='3600'

# Canary steps: up to ten whole percents from 1 to 99, comma-separated, each above the one before
# (100 follows); how long each step lasts; how many requests a step needs to be judged.
CANARY_STEPS_PATTERN='^[1-9][0-9]?(,[1-9][0-9]?){0,9}$'
CANARY_STEP_SECONDS_DEFAULT='60'
CANARY_STEP_SECONDS_MAX='3600'
CANARY_MIN_REQUESTS_DEFAULT='20'
CANARY_MIN_REQUESTS_MAX='999999'

# The release gate's records in GitHub's Deployments API, read by .github/scripts/deployments.sh
# and marked by the module (dagger/src/commands/github.ts): our deployments carry this task; a
# deployment's verdict is its newest status in one of these states (`inactive`, which
# auto_inactive adds, is not one); a rollback marks the one it undid `failure` with a description
# starting with this prefix, which closes the gate to its digest.
DEPLOY_TASK='deploy:slipway'
DECISIVE_STATES=(success failure error)
ROLLED_BACK_STATE='failure'
ROLLED_BACK_PREFIX='rolled back'

# What a deploy ships to the host and installs there; never .env or host state.
BUNDLE_ENTRIES=(docker-compose.prod.yml docker-stack.yml .env.example RUNBOOK.md scripts proxy hooks)
