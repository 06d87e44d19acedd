# Two images from one file:
#   docker build --target proxy -t strangler-proxy .   the proxy alone, non-root, no compiler
#   docker build -t strangler:local .                   the demo world (every process of make run)

# -- the proxy's wheel and its dependencies' wheels, built where a compiler may exist ----------
FROM python:3.11-slim AS wheels
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN pip wheel --wheel-dir /wheels .

# -- the proxy alone: `strangler serve` as an unprivileged user --------------------------------
FROM python:3.11-slim AS proxy
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=wheels /wheels /tmp/wheels
RUN pip install --no-index --find-links /tmp/wheels strangler && rm -rf /tmp/wheels \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin strangler
COPY routes.yaml /config/routes.yaml
USER 10001
EXPOSE 8080 8081
ENTRYPOINT ["strangler"]
CMD ["serve", "--routes", "/config/routes.yaml", "--host", "0.0.0.0", "--admin-host", "0.0.0.0"]

# -- the demo world: one image for every process of the stack; docker-compose.yml picks the
#    command (the last stage: what a plain `docker build .` makes) ------------------------------
FROM python:3.11-slim AS demo
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY legacy_flask ./legacy_flask
COPY drf_app ./drf_app
COPY source_systems ./source_systems
COPY stack ./stack
RUN pip install '.[demo]'
COPY routes.yaml /config/routes.yaml
