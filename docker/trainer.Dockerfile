# syntax=docker/dockerfile:1
# The trainer image: training, evaluation, export and bulk scoring (`python -m <module>`).
#   docker build -f docker/trainer.Dockerfile --build-arg TORCH_VARIANT=cpu  -t cats-dogs-trainer:cpu .
#   docker build -f docker/trainer.Dockerfile --build-arg TORCH_VARIANT=cuda -t cats-dogs-trainer:cuda .
# cpu  = PyTorch's CPU-only wheels (no CUDA libraries, ~1 GB smaller);
# cuda = PyPI's default Linux wheels, which bundle the CUDA runtime as nvidia-* wheels, so the same
#        slim base works: the GPU driver comes from the host (NVIDIA Container Toolkit).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_VARIANT=cpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY contract/ contract/
COPY imaging/ imaging/
COPY training/ training/
COPY export/ export/
COPY scoring/ scoring/
COPY tritonlink/ tritonlink/
COPY tracking/ tracking/
# The CPU index serves torch==2.14.1+cpu, which satisfies the constraints' torch==2.14.1
# (a local version label matches a plain == pin).
RUN case "${TORCH_VARIANT}" in \
        cpu) export PIP_EXTRA_INDEX_URL="${TORCH_CPU_INDEX}" ;; \
        cuda) ;; \
        *) echo "TORCH_VARIANT must be cpu or cuda, got '${TORCH_VARIANT}'" >&2; exit 2 ;; \
    esac \
    && pip install -c constraints.txt ".[train]" \
    && python -c "import torch, training.train, export, scoring; print('torch', torch.__version__)"

FROM ${PYTHON_IMAGE} AS runtime
ARG TORCH_VARIANT=cpu
LABEL org.opencontainers.image.title="cats-dogs-trainer" \
      org.opencontainers.image.description="Training, export and bulk scoring (torch ${TORCH_VARIANT})"
# git: training records the commit of the code it ran and DVC needs it; no compilers here either.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /workspace && chown 10001:10001 /workspace
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MLFLOW_TRACKING_URI=http://mlflow:5000
WORKDIR /workspace
COPY --chown=10001:10001 configs/ configs/
USER 10001:10001
HEALTHCHECK NONE
# `docker run cats-dogs-trainer` trains; `docker run cats-dogs-trainer scoring --input ...` scores.
ENTRYPOINT ["python", "-m"]
CMD ["training.train"]
