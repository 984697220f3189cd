# Stand-in for the official docker:*-dind image (test scaffolding only): a Docker engine in a
# privileged container, one node of the test swarm. Contract kept: the entrypoint
# dockerd-entrypoint.sh passes its arguments to dockerd; /var/lib/docker is meant to be a
# volume; the docker CLI is present. Debian's engine is trixie's docker.io (26.1.5), and trixie
# ships the CLI as docker-cli, only a Recommends: installed by name. openssh-server makes node1
# the manager `dagger call deploy` reaches over SSH (test/support/swarm.ts adds it to a real
# docker:dind, which lacks it).
ARG BASE
FROM ${BASE}
RUN echo 'deb http://deb.debian.org/debian trixie main' >/etc/apt/sources.list.d/trixie.list \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t trixie \
      docker.io docker-cli iptables iproute2 ca-certificates openssh-server >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY dockerd-entrypoint.sh /usr/local/bin/dockerd-entrypoint.sh
VOLUME /var/lib/docker
ENTRYPOINT ["dockerd-entrypoint.sh"]
