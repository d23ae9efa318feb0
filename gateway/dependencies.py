"""Typed access to the per-app singletons created in the lifespan (FastAPI ``Depends``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from gateway.decoding import Decoder
from gateway.drain import Drain
from gateway.metrics import Metrics
from gateway.model_state import ModelState
from gateway.settings import Settings
from gateway.tracking import TrackingService
from gateway.triton_backend import TritonBackend


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    backend: TritonBackend
    model: ModelState
    decoder: Decoder
    tracking: TrackingService | None = None
    in_flight: int = 0
    drain: Drain = field(default_factory=lambda: Drain(0.0))
    batches: int = 0  # /predict/batch requests being processed


async def get_services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, and that hop
    # was ~9 % of the gateway's CPU per request under load (py-spy, make perf).
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
