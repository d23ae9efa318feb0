"""App factory: ``create_app(settings)`` wires settings, Triton client, decoder, metrics and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import structlog
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from gateway import feedback, health, predict
from gateway.decoding import decoder_for
from gateway.dependencies import Services
from gateway.drain import CloseWhileDraining, Drain
from gateway.errors import install_handlers
from gateway.limits import MULTIPART_OVERHEAD, UploadLimitMiddleware
from gateway.metrics import Metrics
from gateway.model_state import ModelState
from gateway.prediction_service import PredictionService
from gateway.settings import Settings
from gateway.tracking import TrackingOptions, TrackingService
from gateway.triton_backend import TritonBackend

log = structlog.get_logger("gateway")

_DEFAULT_MAX_BATCH = 64
DOCS_STATIC = "/docs/static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    drain = Drain(settings.drain_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = TritonBackend(
            settings.triton_url,
            settings.triton_protocol,
            settings.model_name,
            max_connection_age_s=settings.triton_max_connection_age_s,
            retire_after_s=settings.request_timeout_s + 1,
        )
        model = ModelState(backend, metrics, refresh_s=settings.model_refresh_s)
        decoder = decoder_for(settings)
        decoder.start()
        tracking = _tracking_service(settings, metrics) if settings.tracking_enabled else None
        app.state.services = Services(settings, metrics, backend, model, decoder, tracking, drain=drain)
        app.state.prediction = PredictionService(app.state.services)
        # A first check now, so a gateway started after Triton is ready at once; if Triton is not
        # there yet, the background task keeps trying and the gateway serves 503 meanwhile.
        readiness = await model.check()
        log.info(
            "gateway_started",
            triton_url=settings.triton_url,
            protocol=settings.triton_protocol,
            model_name=settings.model_name,
            ready=readiness.ready,
            detail=readiness.reason,
        )
        model.start()
        if tracking is not None:
            if model.info is not None:
                tracking.follow_model(model.info.class_names, model.info.parameters)
            tracking.start()
        try:
            yield
        finally:
            await model.stop()
            if tracking is not None:
                await tracking.stop()
            decoder.close()
            await backend.close()
            log.info("gateway_stopped")

    app = FastAPI(
        title="cats-dogs-classifier gateway",
        description="Upload a photo, get cat or dog; inference runs on Triton. "
        'Every error answers `{"error": <code>, "detail": <text>}`.',
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's own /docs and /redoc load their JS and CSS from a CDN: a blank page offline.
        # _serve_docs adds a /docs that does not.
        docs_url=None,
        redoc_url=None,
    )
    app.state.drain = drain  # DrainingServer (python -m gateway) starts it on SIGTERM
    install_handlers(app)
    _serve_docs(app)
    app.include_router(health.router)
    app.include_router(predict.router)
    app.include_router(feedback.router)

    def upload_limit(path: str) -> int | None:
        if path.rstrip("/") == "/feedback":
            return settings.max_json_bytes  # one cap, with or without Content-Length
        if path.rstrip("/") == "/predict":
            return settings.max_upload_bytes + MULTIPART_OVERHEAD
        if path.rstrip("/") == "/predict/batch":
            return settings.max_batch_bytes + MULTIPART_OVERHEAD
        return None

    app.add_middleware(
        UploadLimitMiddleware,
        limit_for=upload_limit,
        on_reject=lambda: metrics.errors.labels(error_type="too_large").inc(),
        body_timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(CloseWhileDraining, drain=drain)
    return app


def _serve_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) with its assets served by the gateway: it works offline.

    The assets come from the pinned ``fastapi-offline`` wheel (Swagger UI 5), not from files copied
    into this repository; nothing on the page reaches outside the gateway. No /redoc: ReDoc's
    standalone bundle still loads its logo from a CDN.
    """
    static = resources.files("fastapi_offline") / "static"
    app.mount(DOCS_STATIC, StaticFiles(directory=str(static)), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
            # The validator badge would fetch an image from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )


def _tracking_service(settings: Settings, metrics: Metrics) -> TrackingService:
    days = settings.retention_max_age_days
    options = TrackingOptions(
        db_path=settings.tracking_db,
        quality_window=settings.quality_window,
        snapshot_path=settings.stats_snapshot_path,
        refresh_s=settings.tracking_refresh_s,
        snapshot_interval_s=settings.stats_snapshot_interval_s,
        retention_max_age_s=days * 86400 if days is not None else None,
        retention_max_rows=settings.retention_max_rows,
        retention_interval_s=settings.retention_interval_s,
        cache_ttl_s=settings.cache_ttl_s,
        cache_max_entries=settings.cache_max_entries,
        drift_window=settings.drift_window,
        database_url=url.get_secret_value() if (url := settings.tracking_database_url) else None,
        pool_size=settings.tracking_pool_size,
        flush_interval_s=settings.tracking_flush_interval_ms / 1000,
        queue_size=settings.tracking_queue_size,
    )
    # Labels are the served model's, adopted when Triton answers (TrackingService.follow_model).
    return TrackingService(options, metrics.registry, class_names=())
