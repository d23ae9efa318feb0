# syntax=docker/dockerfile:1
# Triton images. 24.10 = Triton 2.51.0, the same server the local nvidia-pytriton 0.7.0 bundles.
#   docker build -f docker/triton.Dockerfile --target gpu -t cats-dogs-triton:gpu .
#       canonical model_repository/ (onnxruntime_onnx, KIND_GPU) baked in at /models
#   docker build -f docker/triton.Dockerfile --target cpu -t cats-dogs-triton:cpu .
#       derived build/model_repository_cpu/ (python backend + onnxruntime, KIND_CPU) baked in
#   docker build -f docker/triton.Dockerfile --target cpu-runtime -t cats-dogs-triton:cpu-runtime .
#       the CPU server without a repository, for a mounted one (docker-compose.cpu.yml, k8s PVC/S3)
# The canonical repository needs nothing beyond the stock image: mount it into the plain
# nvcr.io image instead of baking it (docker-compose.yml does that).
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3

FROM ${TRITON_IMAGE} AS cpu-runtime
# The canonical config pins KIND_GPU, which Triton refuses without a GPU; the derived CPU
# repository runs the same model.onnx through the python backend, which needs these packages.
COPY docker/triton-cpu-requirements.txt /tmp/requirements.txt
# uid 1000 is the image's own triton-server user.
RUN python3 -m pip install --no-cache-dir -r /tmp/requirements.txt \
    && python3 -c "import numpy, onnxruntime; assert numpy.__version__.startswith('1.')"
USER 1000:1000
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=none", \
     "--strict-readiness=true", "--exit-on-error=true", "--pinned-memory-pool-byte-size=0", \
     "--allow-gpu-metrics=false"]

FROM cpu-runtime AS cpu
COPY --chown=1000:1000 build/model_repository_cpu/ /models/

FROM ${TRITON_IMAGE} AS gpu
COPY --chown=1000:1000 model_repository/ /models/
USER 1000:1000
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=none", \
     "--strict-readiness=true", "--exit-on-error=true"]
