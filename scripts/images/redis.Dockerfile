# The bundled Redis of the chart (redis.deploy=true) for the local node, which has no
# registry to pull redis:7.2 from: Debian's redis-server on the local Debian base, started
# the way the official image starts (`redis-server <args>`, uid 999, data in /data).
# Built by scripts/build-images.sh; not a published image.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN groupadd --system --gid 999 redis \
 && useradd --system --uid 999 --gid 999 --home-dir /data --no-create-home redis \
 && apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown redis:redis /data
USER 999:999
WORKDIR /data
ENTRYPOINT ["redis-server"]
