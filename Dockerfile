# syntax=docker/dockerfile:1
# Modelgate service image. Two stages: `build` turns the project and its dependencies
# into wheels; the runtime stage installs those wheels into a virtual environment and
# runs as an unprivileged user. Every dependency ships binary wheels for CPython 3.11,
# so neither stage needs a compiler.
#
#   docker build -t modelgate .
#   docker run -p 8080:8080 -e MODELGATE_DATABASE_URL=postgresql+psycopg://... modelgate
#
# The default command upgrades the schema, then serves on 0.0.0.0:8080 with
# MODELGATE_WORKERS processes (default 2; see docs/decisions/0003-serving-processes.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY migrations ./migrations
COPY app ./app
COPY clients/python ./clients/python
# The project's wheel carries the alembic migrations (package `migrations`), so the
# installed server can run `modelgate db upgrade` without a source tree.
RUN pip wheel --wheel-dir /wheels ./clients/python . \
    && python -m zipfile -l /wheels/modelgate-*.whl | grep -q 'migrations/versions/.*\.py' \
    && python -m zipfile -l /wheels/modelgate-*.whl | grep -q 'migrations/script\.py\.mako'

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="modelgate" \
      org.opencontainers.image.description="Model registry with promotion gates, approvals, rollback and a tamper-evident audit log" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/modelgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    MODELGATE_LOG_FORMAT=json

RUN groupadd --system --gid 10001 modelgate \
    && useradd --system --uid 10001 --gid modelgate --no-create-home \
        --home-dir /var/lib/modelgate --shell /usr/sbin/nologin modelgate \
    && install -d -o modelgate -g modelgate -m 0750 /var/lib/modelgate

# Wheels are bind-mounted from the build stage, so they never become a layer here.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/modelgate \
    && /opt/modelgate/bin/pip install --no-index --find-links /wheels modelgate \
    && modelgate --version

COPY --chmod=0755 scripts/entrypoint /usr/local/bin/modelgate-entrypoint

USER 10001:10001
# Relative default paths (the embedded SQLite database and artifact directory) land here.
WORKDIR /var/lib/modelgate
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["modelgate-entrypoint"]
