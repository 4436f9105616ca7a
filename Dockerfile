# Berth's container image: the static berth binary and nothing else.
#
# Build it with `make image` (IMAGE=berth:TAG to name it). The binary is
# built on the host (CGO_ENABLED=0) and staged with the CA bundle and the
# default config by scripts/image-context; this file only copies that
# context into an empty image, so the build pulls no base image and needs
# no registry. A multi-stage build would need a Go image from a registry.
#
#   docker run -d -p 5000:5000 -v berth-data:/var/lib/berth IMAGE
#   docker run IMAGE serve --config /etc/berth/config.yaml
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=
ARG CREATED=

LABEL org.opencontainers.image.title="berth" \
      org.opencontainers.image.description="Edge mirror for container images: OCI distribution API, pull-through cache, private repositories, cluster" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}"

# /usr/local/bin/berth, /etc/berth/config.yaml, the CA bundle for upstream
# HTTPS and a sticky /tmp.
COPY rootfs/ /
# The data directory belongs to the user berth runs as; a named volume
# mounted here starts as a copy of it, owner included.
COPY --chown=65532:65532 data/ /var/lib/berth/

# Not root: 65532 has no name in a scratch image and needs none.
USER 65532:65532
VOLUME ["/var/lib/berth"]
# The registry; the admin listener (5001) is loopback-only in the default
# config, the cluster uses 7946 (gossip, TCP and UDP) and 5002 (peers).
EXPOSE 5000

# No shell or curl here: berth asks its own admin listener. A config that
# moves admin.listen needs the same address here (docker run
# --health-cmd '/usr/local/bin/berth healthcheck --url http://ADDR/healthz').
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/berth", "healthcheck", "--url", "http://127.0.0.1:5001/healthz"]

ENTRYPOINT ["/usr/local/bin/berth"]
CMD ["serve", "--config", "/etc/berth/config.yaml"]
