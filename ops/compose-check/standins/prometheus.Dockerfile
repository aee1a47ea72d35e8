# Stand-in for prom/prometheus:v3.0.1 (Docker Hub unreachable): Debian bookworm's prometheus package (2.42).
# How it differs from the real image: Prometheus 2.42 instead of 3.0.1 (the flags compose passes, the scrape
# configuration and the HTTP API the check asks, /-/ready and /api/v1/targets, are the same in both); Debian's
# build at /usr/bin/prometheus (the entrypoint, as /bin/prometheus is in the real image) on a Debian base instead
# of busybox; runs as nobody with its working folder /prometheus, as the real image does.
FROM compose-check/bookworm
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /prometheus /etc/prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
VOLUME /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
