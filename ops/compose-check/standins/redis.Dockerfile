# Stand-in for redis:7 (Docker Hub unreachable): Debian bookworm's redis-server and redis-cli (7.0.x).
# How it differs from the real image: Debian's build instead of the upstream one; a two-line entrypoint that, like
# the real docker-entrypoint.sh, turns protected mode off for `redis-server …` (the other containers connect
# over compose's network), but does not drop to the redis user: the server runs as root.
FROM compose-check/bookworm
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data
RUN printf '#!/bin/sh\nif [ "$1" = redis-server ]; then set -- "$@" --protected-mode no; fi\nexec "$@"\n' \
    > /usr/local/bin/docker-entrypoint.sh && chmod +x /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
VOLUME /data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
