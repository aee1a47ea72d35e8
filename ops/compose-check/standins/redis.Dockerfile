# Stand-in for redis:7 (Docker Hub unreachable): Debian bookworm's redis-server and redis-cli (7.0.x).
# How it differs from the real image: Debian's build instead of the upstream one; no docker-entrypoint.sh, so
# the server runs as root instead of dropping to the redis user, and protected mode stays on (the compose check
# runs every container on the host network and connects over 127.0.0.1, which protected mode allows).
FROM compose-check/bookworm
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data
WORKDIR /data
VOLUME /data
EXPOSE 6379
CMD ["redis-server"]
