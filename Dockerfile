# syntax=docker/dockerfile:1
# The watchkeeper worker image (docker-compose.yml builds it as `worker` and `demo`).
#
# Stage 1 installs the project into a virtualenv under the same pins as `make test`
# (constraints.txt). It has a compiler because faust-streaming publishes no arm64
# wheel: on arm64 hosts its sdist builds here. Stage 2 copies only the virtualenv.

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY streams ./streams
COPY detectors ./detectors
COPY sinks ./sinks
COPY dashboards ./dashboards
COPY alerts ./alerts
COPY windows ./windows
COPY watchkeeper ./watchkeeper
COPY clients/python ./clients/python

# The same pins as the Makefile's core venv. Extras: [grafana] only (annotations and
# `dashboards push` to the stack's Grafana); not [embedded] (the stack runs Kafka and
# ClickHouse), [alibi] (numpy < 2) or [dev].
RUN python -m pip install --quiet --upgrade "pip>=24" \
    && python -m pip install --quiet -c constraints.txt ./clients/python ".[grafana]"


FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WATCHKEEPER_WEB_HOST=0.0.0.0 \
    WATCHKEEPER_WEB_PORT=6066 \
    WATCHKEEPER_DATA_DIR=/var/lib/watchkeeper/faust

RUN groupadd --system --gid 10001 watchkeeper \
    && useradd --system --uid 10001 --gid watchkeeper --home-dir /var/lib/watchkeeper \
       --create-home --shell /usr/sbin/nologin watchkeeper

COPY --from=build /opt/venv /opt/venv

USER watchkeeper
WORKDIR /var/lib/watchkeeper
EXPOSE 6066

# Liveness: GET /live answers 200 while the event loop beats and no write is stuck (503
# otherwise, naming the check; streams/health.py). docker-compose.yml asks /ready instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('WATCHKEEPER_WEB_PORT', '6066') + '/live', timeout=4)"]

CMD ["watchkeeper", "worker", "-l", "info"]
