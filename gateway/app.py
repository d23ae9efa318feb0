"""App factory: ``create_app(settings)`` wires settings, Triton client, decoder, metrics and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from gateway import health, predict
from gateway.decoding import Decoder
from gateway.dependencies import Services
from gateway.errors import install_handlers
from gateway.limits import UploadLimitMiddleware
from gateway.metrics import Metrics
from gateway.model_state import ModelState
from gateway.settings import Settings
from gateway.triton_backend import TritonBackend

log = structlog.get_logger("gateway")

_DEFAULT_MAX_BATCH = 64


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = TritonBackend(settings.triton_url, settings.triton_protocol, settings.model_name)
        model = ModelState(backend, metrics, refresh_s=settings.model_refresh_s)
        decoder = Decoder(
            threads=settings.decode_threads,
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
        )
        app.state.services = Services(settings, metrics, backend, model, decoder)
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
        try:
            yield
        finally:
            await model.stop()
            decoder.close()
            await backend.close()
            log.info("gateway_stopped")

    app = FastAPI(
        title="cats-dogs-classifier gateway",
        description="Upload a photo, get cat or dog; inference runs on Triton.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_handlers(app)
    app.include_router(health.router)
    app.include_router(predict.router)

    def upload_limit(path: str) -> int | None:
        if path.rstrip("/") == "/predict":
            return settings.max_upload_bytes
        if path.rstrip("/") == "/predict/batch":
            services: Services | None = getattr(app.state, "services", None)
            info = services.model.info if services else None
            return settings.max_upload_bytes * (info.max_batch_size if info else _DEFAULT_MAX_BATCH)
        return None

    app.add_middleware(
        UploadLimitMiddleware,
        limit_for=upload_limit,
        on_reject=lambda: metrics.errors.labels(error_type="too_large").inc(),
    )
    return app
