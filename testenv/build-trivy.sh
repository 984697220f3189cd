#!/usr/bin/env bash
# Test scaffolding: builds the pinned Trivy from the Go module proxy into a cache outside
# the repo (no prebuilt binary can be downloaded here) and prints the binary's path.
# Rebuilds only when the pinned version changes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# The one pin, shared with the Dagger module's default Trivy image.
version=$(sed -n 's/.*TRIVY_VERSION = "\([0-9.]*\)".*/\1/p' "$here/../dagger/src/commands/trivy.ts")
[[ -n "$version" ]] || { echo "build-trivy: cannot read TRIVY_VERSION from dagger/src/commands/trivy.ts" >&2; exit 1; }
tools=${SLIPWAY_TOOLS_CACHE:-$HOME/.cache/slipway-tools}
bin="$tools/trivy-v$version/trivy"

if [[ -x "$bin" ]]; then echo "$bin"; exit 0; fi
printf '%s [build-trivy] building trivy v%s with go (a few minutes, once)\n' "$(date -u +%H:%M:%S)" "$version" >&2
# `go install m@v` needs the module's version list, which this proxy refuses for trivy;
# downloading the exact version and building it as the main module does not.
dir=$(go mod download -json "github.com/aquasecurity/trivy@v$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d "$dir" ]] || { echo "build-trivy: go mod download of trivy v$version failed" >&2; exit 1; }
mkdir -p "$(dirname "$bin")"
(cd "$dir" && CGO_ENABLED=0 GOEXPERIMENT=jsonv2 GOFLAGS=-mod=mod go build -trimpath \
  -ldflags "-s -w -X github.com/aquasecurity/trivy/pkg/version/app.ver=$version" -o "$bin.tmp" ./cmd/trivy)
mv "$bin.tmp" "$bin"
echo "$bin"
