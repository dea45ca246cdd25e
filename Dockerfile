# syntax=docker/dockerfile:1
# ctid container image: a wheel built in a throw-away stage, installed into a venv at
# /opt/ctid (the same path the systemd unit uses) on python:3.11-slim, run as a non-root user.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ctid ./ctid
COPY bench ./bench
# Wheels for ctid and every dependency, so the runtime stage installs offline.  tzdata is the
# fallback time-zone database for zoneinfo ([site] timezone) if the OS one is missing.
RUN pip wheel --no-cache-dir --wheel-dir /wheels . tzdata

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/ctid/bin:$PATH
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/ctid \
    && /opt/ctid/bin/pip install --no-cache-dir --no-index --find-links=/wheels ctid tzdata \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/ctid --no-create-home \
       --shell /usr/sbin/nologin ctid \
    && install -d -o ctid -g ctid -m 0750 /var/lib/ctid \
    && install -d -m 0755 /etc/ctid
# Without a mounted config the image runs the demo (a bundled capture replayed live).
COPY examples/demo.toml /etc/ctid/ctid.toml
# Containers are reached from outside their own loopback; the config file can still say so.
ENV CTID_HTTP__HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/ctid
EXPOSE 9480
# /healthz is 503 while an AMI link is down: urlopen raises on it and python exits 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:9480/healthz', timeout=4)"]
ENTRYPOINT ["ctid"]
CMD ["run", "--config", "/etc/ctid/ctid.toml"]
