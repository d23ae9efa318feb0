# syntax=docker/dockerfile:1
# The gateway image: FastAPI in front of Triton. Build from the repository root:
#   docker build -f docker/gateway.Dockerfile -t cats-dogs-gateway .
# Two stages so that pip, the build backend and any wheel build leftovers never reach the
# runtime image; the runtime stage only copies the finished virtual environment.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# Optional extra CAs (scripts/images.sh EXTRA_CA=...; TLS-inspecting proxies): trusted by pip in
# this stage only. The folder holds just a README unless a build adds a bundle.
COPY docker/extra-ca/ /tmp/extra-ca/
RUN if ls /tmp/extra-ca/*.crt >/dev/null 2>&1; then cat /tmp/extra-ca/*.crt >> /etc/ssl/certs/ca-certificates.crt; fi
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
# Only the packages the gateway imports: setuptools' discovery skips the ones not copied, so the
# image carries no training or export code (and none of their heavy dependencies); contract/ is the
# model's names and ModelInfo, standard library only.
COPY contract/ contract/
COPY imaging/ imaging/
COPY tracking/ tracking/
COPY gateway/ gateway/
COPY tritonlink/ tritonlink/
RUN pip install -c constraints.txt ".[gateway]" \
    && python -c "import gateway.app, contract, imaging, tracking, tritonlink"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="cats-dogs-gateway" \
      org.opencontainers.image.description="FastAPI gateway in front of the Triton cats_dogs model"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8000 \
    TRITON_URL=triton:8001 \
    TRITON_PROTOCOL=grpc \
    MODEL_NAME=cats_dogs \
    LOG_LEVEL=INFO
# A fixed numeric uid so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# Liveness only: readiness (Triton up, model warm) is for load balancers, and a container that
# restarts because Triton is still loading would never become ready.
HEALTHCHECK --interval=15s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health/live', timeout=2)"]
ENTRYPOINT ["python", "-m", "gateway"]
