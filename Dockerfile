# syntax=docker/dockerfile:1
# One image for every Python service; the compose file picks the process with `command`.

FROM python:3.11-slim-bookworm AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml ./
# Only the pinned runtime dependencies: code changes do not reinstall them.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

FROM python:3.11-slim-bookworm AS runtime
RUN useradd --create-home --uid 10001 engine
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY common ./common
COPY orderengine ./orderengine
COPY gateway ./gateway
COPY worker ./worker
COPY cli ./cli
COPY router_svc ./router_svc
COPY executor_svc ./executor_svc
COPY persistence_svc ./persistence_svc
COPY simchain ./simchain
COPY markets ./markets
COPY web ./web
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER engine
CMD ["python", "-m", "gateway"]
