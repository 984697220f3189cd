# Stand-in for the official aquasec/trivy image (test scaffolding only), with the Trivy this test
# environment builds from source. Contract kept: `trivy` on PATH and as the entrypoint, a shell,
# CA certificates for registries.
ARG BASE
FROM ${BASE}
COPY trivy /usr/local/bin/trivy
# This machine reaches registries through TLS interception; the real image needs no such CA.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["trivy"]
