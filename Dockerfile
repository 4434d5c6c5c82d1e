# The REST API image: only what serving needs (no Jupyter, no book, no plotting).
#
# The artifacts are copied from the build context, so build after `make pipeline`
# (it writes data/processed/ and registers the champion in outputs/models/):
#     make pipeline
#     docker build -t recsys-api .
#     docker run --rm -p 8000:8000 recsys-api          # http://127.0.0.1:8000/docs
# To serve newer artifacts without rebuilding, mount them read-only over the copies:
#     docker run --rm -p 8000:8000 \
#         -v "$PWD/data/processed:/app/data/processed:ro" \
#         -v "$PWD/outputs/models:/app/outputs/models:ro" recsys-api
# A missing or corrupt artifact stops the container at once with
# "error: ... run `make pipeline` ..." (exit code 2) instead of serving errors.
#
# Linted with hadolint (`.venv/bin/hadolint Dockerfile`); no Docker engine runs on
# the project's machines, so the image itself is not built in CI.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build

# scikit-surprise is compiled from source on most platforms: the compiler stays
# in this stage and never reaches the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml README.md ./
COPY .ci/constraints.txt ./constraints.txt
# The serving dependencies are the `serve` extra of pyproject.toml (one list, kept
# with the others); the package itself is installed without its notebook stack, at the
# versions `make test` passed with (.ci/constraints.txt).
# SERVE_PINS (e.g. "numpy==2.1.0 scikit-surprise==1.1.4"): the library versions the
# champion was saved with, so the image loads it (the CD workflow passes them:
# recsys_utils.lifecycle.compat.pip_pins); they replace those packages' constraints.
ARG SERVE_PINS=""
# hadolint ignore=SC2086
RUN python -c "import tomllib; extras = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']; print('\n'.join(extras['serve']))" > requirements-serve.txt \
    && python -c "import re, sys; name = lambda s: re.split('[<>=!~; ]', s, maxsplit=1)[0].lower().replace('_', '-'); pinned = {name(p) for p in sys.argv[1:]}; print(''.join(line for line in open('constraints.txt') if line.startswith('#') or name(line) not in pinned), end='')" ${SERVE_PINS} > constraints-serve.txt \
    && pip install -c constraints-serve.txt -r requirements-serve.txt ${SERVE_PINS}
COPY recsys_utils ./recsys_utils
RUN pip install --no-deps . \
    && python -c "import recsys_utils.serving.app, recsys_utils.ranking.recommender, recsys_utils.data.cleaning"

# ---------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE}

# A fixed numeric uid/gid so mounted artifacts can be made readable to it.
RUN groupadd --gid 10001 app \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECSYS_ROOT=/app

WORKDIR /app
COPY --chown=10001:10001 data/processed/ data/processed/
COPY --chown=10001:10001 outputs/models/ outputs/models/

USER 10001:10001
EXPOSE 8000

# The slim image has no curl: ask /health with the Python already there. The
# start period covers loading plus the cache warm-up (recsys-serve --warm-seconds).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["recsys-serve", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
