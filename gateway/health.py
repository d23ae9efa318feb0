"""Liveness, readiness and a detailed health view; GET / (API description or the upload page)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from contract.model import MODEL_NAME
from gateway import schemas
from gateway.dependencies import ServicesDep
from gateway.upload_page import UPLOAD_PAGE

router = APIRouter()


class PrometheusText(Response):
    """Declares /metrics' content type in the OpenAPI document (the route sets it on its answer too)."""

    media_type = CONTENT_TYPE_LATEST


# GET and HEAD: many load balancers probe with HEAD (the body is dropped by the server).
@router.api_route(
    "/health/live",
    methods=["GET", "HEAD"],
    tags=["health"],
    summary="The process is up",
    response_model=None,
    responses=schemas.ok(schemas.Alive, "Always, while the process runs", {"status": "alive"}),
)
async def live(services: ServicesDep) -> dict[str, str]:
    services.metrics.health_checks.inc()
    return {"status": "alive"}


@router.api_route(
    "/health/ready",
    methods=["GET", "HEAD"],
    tags=["health"],
    summary="Triton up, model loaded and warm, decoding not saturated",
    response_model=None,
    responses=schemas.ok(
        schemas.Ready,
        "Ready to classify",
        {"status": "ready", "model_name": MODEL_NAME, "model_version": "3"},
    )
    | {
        503: {
            "model": schemas.ErrorBody,
            "description": "Not ready (Triton down, model not loaded or not warm yet); see Retry-After",
            "content": {
                "application/json": {
                    "example": {"error": "not_ready", "detail": "Triton is not reachable or not ready"}
                }
            },
        }
    },
)
async def ready(services: ServicesDep) -> Response:
    services.metrics.health_checks.inc()
    if services.drain.draining:
        # First step of a drain: load balancers take this replica out while it still serves.
        return JSONResponse(
            {"error": "not_ready", "detail": "draining: shutting down"},
            status_code=503,
            headers={"Retry-After": str(services.settings.retry_after_s)},
        )
    if services.decoder.saturated:
        # Every decode thread stuck on one file for over DECODE_STALL_S: a new photo would wait.
        return JSONResponse(
            {"error": "not_ready", "detail": "every decode thread is busy with a slow upload"},
            status_code=503,
            headers={"Retry-After": str(services.settings.retry_after_s)},
        )
    state = await services.model.check()
    if state.ready and services.model.ready and services.model.info is not None:
        info = services.model.info
        return JSONResponse({"status": "ready", "model_name": info.name, "model_version": info.version})
    return JSONResponse(
        {"error": "not_ready", "detail": state.reason},
        status_code=503,
        headers={"Retry-After": str(services.settings.retry_after_s)},
    )


@router.api_route(
    "/health",
    methods=["GET", "HEAD"],
    tags=["health"],
    summary="Detail: model name/version and Triton state",
    response_model=None,
    responses=schemas.ok(schemas.Health, "Ready: the model served and Triton's state", schemas.HEALTH_EXAMPLE)
    | {
        503: {
            "model": schemas.Health,
            "description": "Not ready: the same body, with status 'unavailable' and Triton's detail",
            "content": {
                "application/json": {
                    "example": schemas.HEALTH_EXAMPLE
                    | {
                        "status": "unavailable",
                        "ready": False,
                        "model": None,
                        "triton": schemas.HEALTH_EXAMPLE["triton"]
                        | {
                            "live": False,
                            "model_ready": False,
                            "detail": "Triton is not reachable or not ready",
                        },
                    }
                }
            },
        }
    },
)
async def health(services: ServicesDep) -> Response:
    services.metrics.health_checks.inc()
    state = await services.model.check()
    info = services.model.info
    body: dict[str, Any] = {
        "status": "ok" if services.model.ready else "unavailable",
        "ready": services.model.ready,
        "model": info.as_dict() if info else None,
        "triton": {
            "url": services.settings.triton_url,
            "protocol": services.settings.triton_protocol,
            "live": state.triton_live,
            "model_ready": state.model_ready,
            "detail": state.reason,
        },
        "in_flight": services.in_flight,
        "draining": services.drain.draining,
        "decoding": services.decoder.describe(),
    }
    return JSONResponse(body, status_code=200 if services.model.ready else 503)


@router.get(
    "/metrics",
    tags=["monitoring"],
    summary="Prometheus metrics",
    response_class=PrometheusText,
    responses={200: {"description": "Prometheus text exposition format"}},
)
async def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/",
    summary="API information; a browser (Accept: text/html) gets the upload page",
    response_model=None,
    responses={
        200: {
            "model": schemas.ApiDescription,
            "description": "JSON for programs; the upload page for a browser",
            "content": {
                "application/json": {"example": schemas.ROOT_EXAMPLE},
                "text/html": {"schema": {"type": "string"}},
            },
        }
    },
)
async def root(request: Request, services: ServicesDep) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(UPLOAD_PAGE)
    info = services.model.info
    return JSONResponse(
        {
            "name": "cats-dogs-classifier gateway",
            "description": "Upload a photo, get cat or dog. Send Accept: text/html for the upload page.",
            "model": {"name": info.name, "version": info.version, "class_names": list(info.class_names)}
            if info
            else None,
            "ready": services.model.ready,
            "endpoints": {
                "POST /predict": "multipart field 'file' → label, confidence, probabilities",
                "POST /predict/batch": "repeated multipart field 'files' (≤ max batch) → per-file results",
                "GET /health/live": "process up",
                "GET /health/ready": "Triton ready, model loaded and warm",
                "GET /health": "model name/version and Triton state",
                "GET /metrics": "Prometheus metrics",
                "POST /feedback": "JSON {request_id, true_label}: the true label of a served prediction",
                "GET /stats": "live quality and traffic over ?window=1h (30m, 7d, all …)",
                "GET /": "this description (a browser gets the upload page)",
                "GET /docs": "OpenAPI UI (Swagger UI, works offline)",
                "GET /openapi.json": "the OpenAPI document",
            },
            "limits": {
                "max_upload_bytes": services.settings.max_upload_bytes,
                "max_pixels": services.settings.max_pixels,
                "max_batch": info.max_batch_size if info else None,
            },
        }
    )
