# The Atlas image: a virtual environment with Atlas and its dependencies on a slim Python.
#
# Wheels are built on the host (packaging/build-image.sh runs `pip wheel`), so this build
# downloads nothing and needs no compiler; the final image has none either (not even pip).
# It runs as a fixed non-root UID and works with a read-only root filesystem: HOME and TMPDIR
# point at volumes (emptyDir in the chart).
#
#   BASE_IMAGE  a Debian-based Python >= 3.11 with `python3 -m venv` (default: the official
#               slim image users pull; CI builds on one it makes with debootstrap)
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS install
COPY dist/wheels/ /wheels/
RUN python3 -m venv /opt/atlas \
 && /opt/atlas/bin/pip install --no-index --find-links /wheels --no-cache-dir atlas-xds \
 && /opt/atlas/bin/pip uninstall --yes --quiet pip \
 && find /opt/atlas -name '__pycache__' -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
ARG VERSION=0.0.0
LABEL org.opencontainers.image.title="atlas" \
      org.opencontainers.image.description="Envoy xDS control plane and authoritative DNS for Thanos across many clusters" \
      org.opencontainers.image.source="https://github.com/atlas-xds/atlas" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=install /opt/atlas /opt/atlas
RUN mkdir -p /var/lib/atlas && chown 10001:10001 /var/lib/atlas
ENV PATH=/opt/atlas/bin:$PATH \
    HOME=/var/lib/atlas \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/atlas
VOLUME ["/var/lib/atlas", "/tmp"]
# ADS (gRPC), DNS (unprivileged; the chart's Service maps 53 to it), metrics and status.
EXPOSE 18000 5353/udp 5353/tcp 9180
ENTRYPOINT ["atlas"]
CMD ["serve", "--source", "kubernetes"]
