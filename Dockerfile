# watcher in a container: state and config in the /data volume, running as an unprivileged user.
#   docker build -t watcher .
#   docker run -d --name watcher -v watcher-data:/data watcher
# On first start an absent /data/config.toml is created from the default; edit it, then `docker restart watcher`.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY watcher ./watcher
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin watcher \
 && mkdir -p /data && chown watcher:watcher /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV WATCHER_CONFIG=/data/config.toml \
    WATCHER_DB=/data/watcher.db \
    PYTHONUNBUFFERED=1
USER watcher
WORKDIR /data
VOLUME ["/data"]
# `watcher run` stops cleanly on SIGTERM (docker stop) within 10 s.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=1m --timeout=10s --start-period=2m CMD ["watcher", "status", "--check"]
CMD ["sh", "-c", "[ -f \"$WATCHER_CONFIG\" ] || watcher init \"$WATCHER_CONFIG\"; exec watcher run"]
