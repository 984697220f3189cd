# The Slipway API image. Build: docker build --build-arg APP_VERSION=v2 -t slipway/api:v2 .
# Pinned base; override with --build-arg NODE_IMAGE=<mirror>/node:… when you use a mirror.
ARG NODE_IMAGE=node:22.20.0-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund --ignore-scripts

FROM ${NODE_IMAGE} AS runtime
# Security fixes published since the base image was cut; the Trivy gate checks the result.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y --no-install-recommends \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/slipway && chmod 1777 /run/slipway
WORKDIR /app
ENV NODE_ENV=production PORT=3000 MIGRATIONS_DIR=/app/db/migrations \
    DBMATE_MIGRATIONS_DIR=/app/db/migrations DBMATE_NO_DUMP_SCHEMA=true DBMATE_WAIT=true
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root db/migrations ./db/migrations
COPY --chown=root:root src/healthcheck.pl ./healthcheck.pl
# The version is the last layer so v1 and v2 share everything above it.
ARG APP_VERSION=dev
ENV APP_VERSION=${APP_VERSION}
LABEL org.opencontainers.image.title="slipway-api" org.opencontainers.image.version="${APP_VERSION}"
USER node
EXPOSE 3000
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --start-interval=1s --retries=3 \
  CMD ["perl", "/app/healthcheck.pl"]
# tini as PID 1 forwards SIGTERM to node and reaps zombies.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/server.js"]
