#!/bin/sh
# docker:dind's contract: arguments go to dockerd (test scaffolding only).
set -e
rm -f /var/run/docker.pid
exec dockerd --host=unix:///var/run/docker.sock "$@"
