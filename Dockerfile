# watcher in a container: state and config in the /data volume, running as an unprivileged user.
#   docker build -t watcher .                                   (add --build-arg EXTRAS=datasette for `watcher serve`)
#   docker run -d --name watcher -v watcher-data:/data -e WATCHER_HTTP=0.0.0.0:9108 -p 127.0.0.1:9108:9108 watcher
# On first start an absent $WATCHER_CONFIG is written from the default. Change feeds with
# `docker exec watcher watcher feeds add URL` or edit the file: the daemon reloads it without a restart.
# Configuration: WATCHER_CONFIG, WATCHER_DB, WATCHER_HTTP, WATCHER_LOG_FORMAT, WATCHER_LOG_LEVEL, and the secrets the
# config names (SMTP_PASSWORD, SLACK_WEBHOOK_URL, ...); or mount a directory holding config.toml and point
# WATCHER_CONFIG at it (mount the directory, not the file: edits replace the file atomically).
# compose.yaml runs this image with a named volume and the same health check.

# --- build: wheels for watcher and every dependency (lxml and friends come as manylinux wheels) ---
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY watcher ./watcher
ARG EXTRAS=""
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"

# --- run: the wheels installed offline, no compiler, no pip cache, no sources ---
FROM python:3.11-slim
ARG EXTRAS=""
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin watcher \
 && mkdir -p /data && chown watcher:watcher /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "watcher${EXTRAS:+[$EXTRAS]}" && rm -rf /wheels
ENV WATCHER_CONFIG=/data/config.toml \
    WATCHER_DB=/data/watcher.db \
    PYTHONUNBUFFERED=1
USER watcher
WORKDIR /data
VOLUME ["/data"]
# /healthz and /metrics when WATCHER_HTTP=0.0.0.0:9108 is set (off by default).
EXPOSE 9108
# `watcher run` stops cleanly on SIGTERM (docker stop) within 10 s: in-flight polls finish or roll back.
STOPSIGNAL SIGTERM
# The verdict /healthz gives (ops.py): exit 1 when failing (database unwritable, scheduler stopped, every feed
# failing while the network works); degraded (offline, late alerts) still counts as healthy.
HEALTHCHECK --interval=1m --timeout=10s --start-period=2m --retries=3 CMD ["watcher", "status", "--check"]
# `exec`: watcher becomes the shell's replacement, so it receives docker stop's SIGTERM itself.
CMD ["sh", "-c", "[ -f \"$WATCHER_CONFIG\" ] || watcher init \"$WATCHER_CONFIG\"; exec watcher run"]
