#!/usr/bin/env bash
# `make images`: build the gateway, puller and trainer images with a local Docker engine.
#
#   scripts/images.sh [gateway|puller|trainer|all ...]   # default: gateway puller trainer
#   scripts/images.sh engine                             # only make sure an engine answers
#   scripts/images.sh base                               # only print the base image a build would use
#
# Environment:
#   PYTHON_IMAGE   the base image (default python:3.11-slim-bookworm, what CI and production use).
#                  When it is neither present nor pullable, a Debian bookworm base is made from
#                  Debian's packages with mmdebstrap and passed as the build-arg PYTHON_IMAGE: the
#                  substitution is printed, and it is never written into a Dockerfile.
#   EXTRA_CA       a PEM bundle the builder stages trust (TLS-inspecting proxies); default: none.
#                  On this project's build machines: EXTRA_CA=/etc/ssl/certs/ca-certificates.crt.
#   START_DOCKERD  1 (default) starts dockerd from Debian's docker.io when no engine answers and we
#                  are root; 0 only checks.
#   IMAGE_TAG      tag for every image (default local).
#
# Exit codes: 0 built, 2 usage, 3 no engine / tool missing, 1 a build failed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim-bookworm}
IMAGE_TAG=${IMAGE_TAG:-local}
START_DOCKERD=${START_DOCKERD:-1}
EXTRA_CA=${EXTRA_CA:-}
BUILD_DIR=build/images
# What the fallback base is made of; its hash names the cached tarball, so a change rebuilds it.
BASE_SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates

die() {
    local code=$1
    shift
    echo "error: $*" >&2
    exit "$code"
}

engine_up() { docker info >/dev/null 2>&1; }

ensure_engine() {
    command -v docker >/dev/null 2>&1 || die 3 "no docker CLI; install Debian's docker.io (apt-get install docker.io)"
    engine_up && return 0
    [ "$START_DOCKERD" = 1 ] || die 3 "no Docker engine answers (docker info failed) and START_DOCKERD=0"
    command -v dockerd >/dev/null 2>&1 || die 3 "no Docker engine and no dockerd; apt-get install docker.io"
    [ "$(id -u)" = 0 ] || die 3 "no Docker engine answers; starting dockerd needs root"
    mkdir -p "$BUILD_DIR"
    # No iptables and no bridge: machines without those kernel features (containers, CI sandboxes)
    # still run an engine; builds and containers then use --network host.
    echo "starting dockerd (log: $BUILD_DIR/dockerd.log)" >&2
    nohup dockerd --iptables=false --bridge=none >"$BUILD_DIR/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
        engine_up && return 0
        sleep 0.5
    done
    tail -20 "$BUILD_DIR/dockerd.log" >&2
    die 3 "dockerd did not answer within 30 s"
}

# The base image a build uses: PYTHON_IMAGE when present or pullable, else the mmdebstrap base.
resolve_base() {
    if docker image inspect "$PYTHON_IMAGE" >/dev/null 2>&1 || timeout 60 docker pull -q "$PYTHON_IMAGE" >/dev/null 2>&1; then
        echo "$PYTHON_IMAGE"
        return 0
    fi
    local key tarball name
    key=$(printf '%s\n' "$BASE_SUITE" "$BASE_PACKAGES" "$(mmdebstrap --version 2>/dev/null || echo none)" | sha256sum | cut -c1-12)
    name="cats-dogs-base:$BASE_SUITE-$key"
    tarball="$BUILD_DIR/base-$BASE_SUITE-$key.tar"
    if ! docker image inspect "$name" >/dev/null 2>&1; then
        if [ ! -s "$tarball" ]; then
            command -v mmdebstrap >/dev/null 2>&1 ||
                die 3 "$PYTHON_IMAGE cannot be pulled and mmdebstrap is missing (apt-get install mmdebstrap)"
            echo "$PYTHON_IMAGE cannot be pulled: making $name from Debian packages (mmdebstrap)" >&2
            mkdir -p "$BUILD_DIR"
            mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" "$BASE_SUITE" "${tarball%.tar}.partial.tar" >&2
            mv "${tarball%.tar}.partial.tar" "$tarball"
        fi
        docker import "$tarball" "$name" >/dev/null
    fi
    echo "base: $name instead of $PYTHON_IMAGE (not pullable here)" >&2
    echo "$name"
}

build_one() { # $1 = image name (gateway|puller|trainer), $2 = base image
    local name=$1 base=$2 started
    local args=(--network host -f "docker/$name.Dockerfile" -t "cats-dogs-$name:$IMAGE_TAG" --build-arg "PYTHON_IMAGE=$base")
    started=$(date +%s)
    echo "building cats-dogs-$name:$IMAGE_TAG on $base" >&2
    DOCKER_BUILDKIT=0 docker build -q "${args[@]}" . >/dev/null || die 1 "cats-dogs-$name build failed"
    echo "cats-dogs-$name:$IMAGE_TAG built in $(($(date +%s) - started)) s," \
        "$(docker image inspect -f '{{.Size}}' "cats-dogs-$name:$IMAGE_TAG" | awk '{printf "%.0f MB", $1/1e6}')"
}

# The extra CA travels in the build context (docker/extra-ca/, gitignored) because plain `docker
# build` has no secret mounts; only builder stages copy it, runtime stages never see it.
stage_extra_ca() {
    rm -f docker/extra-ca/*.crt
    if [ -n "$EXTRA_CA" ]; then
        [ -s "$EXTRA_CA" ] || die 2 "EXTRA_CA=$EXTRA_CA is not a readable file"
        cp "$EXTRA_CA" docker/extra-ca/extra.crt
    fi
}

main() {
    local targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=(gateway puller trainer)
    case "${targets[0]}" in
    engine)
        ensure_engine
        return 0
        ;;
    base)
        ensure_engine
        resolve_base
        return 0
        ;;
    esac
    for t in "${targets[@]}"; do
        case "$t" in
        gateway | puller | trainer) ;;
        all) targets=(gateway puller trainer) ;;
        *) die 2 "build what? gateway, puller, trainer or all (got '$t')" ;;
        esac
    done
    ensure_engine
    local base
    base=$(resolve_base)
    stage_extra_ca
    trap 'rm -f docker/extra-ca/*.crt' EXIT
    for t in "${targets[@]}"; do build_one "$t" "$base"; done
}

main "$@"
