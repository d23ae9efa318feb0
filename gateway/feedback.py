"""POST /feedback (shelter staff confirm or correct a label) and GET /stats (how the model is doing)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway import schemas
from gateway.dependencies import Services, ServicesDep
from gateway.errors import ApiError
from tracking.store import ConflictingLabelError, StoreUnavailableError, UnknownPredictionError
from tracking.tracker import parse_window

router = APIRouter(tags=["tracking"])


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=64, description="request_id of the /predict answer")
    true_label: str = Field(min_length=1, max_length=64, description="the correct class name")


async def require_api_key(services: ServicesDep, x_api_key: Annotated[str | None, Header()] = None) -> None:
    """When API_KEY is set, writes need it; compare_digest keeps the check constant-time."""
    expected = services.settings.api_key
    if expected is None:
        return
    given = (x_api_key or "").encode()
    if not hmac.compare_digest(given, expected.get_secret_value().encode()):
        raise ApiError(
            401, "unauthorized", "missing or invalid X-API-Key", headers={"WWW-Authenticate": "ApiKey"}
        )


def _store_unavailable(services: Services) -> ApiError:
    # The shared log (PostgreSQL) is down or saturated: nothing was stored, the client may retry.
    return ApiError(
        503,
        "tracking_unavailable",
        "the prediction log is unavailable; nothing was stored, retry later",
        headers={"Retry-After": str(services.settings.retry_after_s)},
    )


def _tracking(services: Services) -> Any:
    if services.tracking is None:
        raise ApiError(404, "not_found", "prediction tracking is disabled (TRACKING_ENABLED=false)")
    return services.tracking


@router.post(
    "/feedback",
    summary="Record the true label of a served prediction",
    dependencies=[Depends(require_api_key)],
    response_model=None,
    responses=schemas.ok(
        schemas.FeedbackStored,
        "The label was already stored (a repeat of the same label)",
        {"request_id": "5f0c8e1e2b7a4c0f9d7e3a1b2c4d6e8f", "true_label": "cat", "stored": False},
    )
    | schemas.ok(
        schemas.FeedbackStored,
        "The label is stored (on disk: the call returns after the commit)",
        {"request_id": "5f0c8e1e2b7a4c0f9d7e3a1b2c4d6e8f", "true_label": "cat", "stored": True},
        status=201,
    )
    | schemas.error_responses(401, 404, 409, 413, 422, 500, 503),
)
async def feedback(item: Feedback, services: ServicesDep) -> JSONResponse:
    tracking = _tracking(services)
    labels = tracking.tracker.class_names
    if item.true_label not in labels:
        raise ApiError(422, "invalid_label", f"true_label must be one of {list(labels)}")
    try:
        # Returns only after the COMMIT (SQLite synchronous=FULL, or PostgreSQL's WAL flush):
        # a 2xx means the label is durable. A prediction row still queued is committed first.
        created = await tracking.add_feedback(item.request_id, item.true_label)
    except StoreUnavailableError as exc:
        raise _store_unavailable(services) from exc
    except UnknownPredictionError as exc:
        raise ApiError(
            404, "unknown_request_id", f"no prediction with request_id {item.request_id!r}"
        ) from exc
    except ConflictingLabelError as exc:
        raise ApiError(
            409, "conflicting_label", f"request_id {item.request_id!r} is already labelled {exc.existing!r}"
        ) from exc
    if created:
        # A correction made here shows in this replica's /stats at once; other replicas' cached
        # answers catch up within STATS_CACHE_S.
        tracking.forget_stats()
    return JSONResponse(
        {"request_id": item.request_id, "true_label": item.true_label, "stored": created},
        status_code=201 if created else 200,
    )


@router.get(
    "/stats",
    summary="Live quality and traffic statistics over a window (e.g. 1h, 7d, all)",
    response_model=None,
    responses=schemas.ok(schemas.Stats, "Statistics of the predictions in the window", schemas.STATS_EXAMPLE)
    | schemas.error_responses(401, 404, 422, 429, 500, 503),
    # A heavy query over the whole log: behind the same key as /feedback when API_KEY is set.
    dependencies=[Depends(require_api_key)],
)
async def stats(
    services: ServicesDep,
    window: Annotated[str, Query(max_length=16, description="30m, 1h, 7d … or all")] = "1h",
) -> dict[str, Any]:
    tracking = _tracking(services)
    try:
        parse_window(window)
    except ValueError as exc:
        raise ApiError(422, "invalid_window", str(exc)) from exc
    try:
        computed = await tracking.stats(window, services.settings.stats_cache_s)
    except StoreUnavailableError as exc:
        raise _store_unavailable(services) from exc
    if computed is None:
        raise ApiError(
            429,
            "overloaded",
            "statistics are being computed for other callers; retry shortly",
            headers={"Retry-After": str(services.settings.retry_after_s)},
        )
    result: dict[str, Any] = dict(computed)  # the cached dict is shared: never mutate it
    result["drift"] = tracking.drift.snapshot()
    result["cache"] = {
        "entries": len(tracking.cache),
        "hits": tracking.cache.hits,
        "misses": tracking.cache.misses,
    }
    return result
