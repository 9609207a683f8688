# syntax=docker/dockerfile:1
# The CyberSentinel scoring service (`cybersentinel serve`): API, web page and model card on port 8000.
#
#   dvc pull models                      # the model is not in git; the deploy workflow pulls it with its OIDC role
#   docker build -t cybersentinel .
#   docker run -p 127.0.0.1:8000:8000 -v "$PWD/data/feeds:/app/data/feeds:ro" cybersentinel
#
# The model is copied in at build and verified against its manifest's SHA-256 (a mismatch fails the build); a
# folder mounted over /app/models at run time replaces it (verified again at start). Threat-intel feeds change
# daily, so they are mounted at run time (`cybersentinel feeds refresh` fills the folder); without them the
# service scores with the model alone and says so. See docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The package index the host uses (a mirror, or extra local indexes mounted into the build with --volume):
# `make image` passes the host's pip settings. They exist only in this stage, never in the runtime image.
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_FIND_LINKS=""
ARG PIP_CERT=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements-serve.lock ./
# The service's share of the locked requirements (no pipeline, tracking, database, notebook or test tools), at the
# versions of requirements.lock, every file checked against its hash (`make lock` writes both locks).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements-serve.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/app/.numba-cache \
    CYBERSENTINEL_MODEL_DIR=/app/models \
    CYBERSENTINEL_FEEDS_DIR=/app/data/feeds \
    CYBERSENTINEL_METRICS=/app/reports/metrics.json \
    CYBERSENTINEL_FEEDBACK_DB=/app/state/feedback.sqlite \
    CYBERSENTINEL_PORT=8000
# LightGBM's OpenMP runtime: not in the slim Python images (without it loading the model fails).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 cybersentinel \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin cybersentinel
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY models/model.json models/model.skops models/scorer.npz models/popular.txt models/software.txt models/resolvers.txt ./models/
COPY reports/metrics.json ./reports/
# analyst feedback (SQLite unless CYBERSENTINEL_FEEDBACK_DSN names PostgreSQL): mount a volume on /app/state to keep it
RUN mkdir -p /app/data/feeds /app/.numba-cache /app/state && chown 10001:10001 /app/.numba-cache /app/state
USER 10001:10001
# Fails the build if the model or its compiled form (what the service loads) does not match the hashes in the
# manifest, or the model holds untrusted types; compiles the kernels into the numba cache, so the first
# request is as fast as the rest.
RUN python -c "from cybersentinel.model.estimators import load_detector; load_detector('models')" \
    && python -c "from cybersentinel.scoring.detector import Detector; Detector.from_dir('models').score_urls(['example.com'])"
EXPOSE 8000
# The port comes from CYBERSENTINEL_PORT (8000), for `serve` and this check alike.
HEALTHCHECK --interval=30s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"CYBERSENTINEL_PORT\"]}/healthz', timeout=2)"]
# 0.0.0.0 inside the container only: publish the port on the host's loopback (or behind a proxy/load balancer)
# and set CYBERSENTINEL_API_KEYS. Two workers for a 2-vCPU instance; each holds its own copy of the model.
CMD ["cybersentinel", "serve", "--host", "0.0.0.0", "--workers", "2"]
