# One image for every process of the stack; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY legacy_flask ./legacy_flask
COPY drf_app ./drf_app
COPY source_systems ./source_systems
COPY stack ./stack
RUN pip install .
COPY routes.yaml /config/routes.yaml
