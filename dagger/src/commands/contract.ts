// Generated from scripts/lib/contract.sh by dagger/generate-contract.ts (npm run contract): do not edit.
// What the host scripts and this module must agree on; the rules and their reasons are there.

export const TAG_PATTERN = new RegExp("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$");
export const REF_PATTERN = new RegExp("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?$");
export const DIGEST_PATTERN = new RegExp("^sha256:[0-9a-f]{64}$");
export const GUARD_SECONDS_MAX = 3600;
export const CANARY_STEPS_PATTERN = new RegExp("^[1-9][0-9]?(,[1-9][0-9]?){0,9}$");
export const CANARY_STEP_SECONDS_DEFAULT = 60;
export const CANARY_STEP_SECONDS_MAX = 3600;
export const CANARY_MIN_REQUESTS_DEFAULT = 20;
export const CANARY_MIN_REQUESTS_MAX = 999999;
export const DEPLOY_TASK = "deploy:slipway";
export const DECISIVE_STATES = ["success","failure","error"] as const;
export const ROLLED_BACK_STATE = "failure";
export const ROLLED_BACK_PREFIX = "rolled back";
export const BUNDLE_ENTRIES = ["docker-compose.prod.yml","docker-stack.yml",".env.example","RUNBOOK.md","scripts","proxy","hooks"] as const;
