# syntax=docker/dockerfile:1
# The ccpulse image: one entry point (`ccpulse`) for set-up, the worker, the simulator and queries.
#   docker build -t ccpulse:local .
#   docker run --rm ccpulse:local config
FROM python:3.11-slim-bookworm

# PYTHONPATH=/app: the installed package finds its migrations next to itself
# (streams/clickhouse/migrate.py: <package>/../sql/migrations), and sql/ is not part of the wheel,
# so the code runs from /app, where streams/ and sql/ sit side by side.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Dependencies in their own layer (read from pyproject.toml), so a code change rebuilds in seconds.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY streams/ ./streams/
COPY schemas/ ./schemas/
COPY bench/ ./bench/
COPY sql/ ./sql/
RUN pip install . && rm -rf build ./*.egg-info

# Not root. Relative state (.ccpulse: faust data, an embedded chdb path) lands in the home folder.
RUN useradd --uid 10001 --create-home --home-dir /home/ccpulse --shell /usr/sbin/nologin ccpulse
USER ccpulse
WORKDIR /home/ccpulse

# The worker's read-only HTTP endpoint (GET /health, POST /sql); CCPULSE_WEB_HOST must be 0.0.0.0 to reach it.
EXPOSE 6066

ENTRYPOINT ["ccpulse"]
CMD ["worker"]
