# syntax=docker/dockerfile:1
# The model puller: the Triton pod's init container. It writes a verified Triton repository from the
# MLflow registry (python -m export.pull --alias champion --dest /models). Build from the repo root:
#   docker build -f docker/puller.Dockerfile -t cats-dogs-puller .
# No torch: mlflow-skinny, tritonclient's protobufs and onnx only.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY docker/extra-ca/ /tmp/extra-ca/
RUN if ls /tmp/extra-ca/*.crt >/dev/null 2>&1; then cat /tmp/extra-ca/*.crt >> /etc/ssl/certs/ca-certificates.crt; fi
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
# export.pull reads training.registry's names; nothing else of training is copied.
COPY contract/ contract/
COPY training/__init__.py training/registry.py training/
COPY export/ export/
RUN pip install -c constraints.txt ".[pull]" \
    && python -c "import export.pull" \
    && ! python -c "import torch" 2>/dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="cats-dogs-puller" \
      org.opencontainers.image.description="Writes the cats_dogs Triton repository from the MLflow registry"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
WORKDIR /tmp
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "export.pull"]
CMD ["--alias", "champion", "--dest", "/models"]
