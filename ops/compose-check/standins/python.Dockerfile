# Stand-in for python:3.11-slim (Docker Hub unreachable): Debian bookworm's own Python 3.11 (3.11.2) and pip
# (23.0) from Debian packages, on a debootstrap minbase imported as compose-check/bookworm (scripts/compose-setup).
# How it differs from the real image: Python is Debian's at /usr/bin (symlinked as /usr/local/bin/python and
# /usr/local/bin/pip) instead of a source build under /usr/local; pip installs into /usr/local/lib/python3.11/
# dist-packages; Debian's "externally managed" marker is removed so that pip installs system-wide, as in the
# real image; no PYTHON_VERSION/GPG_KEY variables; a few more Debian libraries (libexpat, libssl from Debian);
# and it trusts the host's local CA certificates (/usr/local/share/ca-certificates, copied into local-ca/ by
# scripts/compose-setup), for a host that reaches PyPI through a TLS-inspecting proxy.
FROM compose-check/bookworm
COPY local-ca/ /usr/local/share/ca-certificates/
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends python3 python3-pip ca-certificates \
    && update-ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \
    && ln -s /usr/bin/python3 /usr/local/bin/python && ln -s /usr/bin/pip3 /usr/local/bin/pip
ENV LANG=C.UTF-8
CMD ["python3"]
