"""What the gateway answers, as pydantic models for the OpenAPI document (``/openapi.json``, ``/docs``).

The routes build their JSON by hand and return it as a ``JSONResponse``; these models only *describe*
it (``responses=`` on each route, ``response_model=None``), so documenting an answer can never change
its bytes. Every model forbids extra keys: the fuzz tests validate real answers against this document
(schemathesis' response-schema conformance), so a key added to a route without a model here fails CI.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.model import INPUT_DATATYPE, INPUT_NAME, MODEL_NAME, OUTPUT_NAME


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------- errors


class ErrorBody(_Strict):
    """Every failure: a stable machine-readable ``error`` code and a human ``detail`` (never internals)."""

    error: str = Field(description="stable code, e.g. unsupported_format, overloaded, model_unavailable")
    detail: str = Field(description="what went wrong and what to do, safe to show to a user")


# One example per status; the codes are the ones the gateway really sends (gateway/errors.py and routes).
ERROR_EXAMPLES: dict[int, tuple[str, str, str]] = {
    400: ("Empty upload or malformed request", "empty", "the file is empty"),
    401: (
        "X-API-Key missing or wrong (only when API_KEY is set)",
        "unauthorized",
        "missing or invalid X-API-Key",
    ),
    404: ("Unknown request_id, or tracking disabled", "not_found", "prediction tracking is disabled"),
    409: ("The prediction already has a different label", "conflicting_label", "already labelled 'cat'"),
    413: (
        "Upload over MAX_UPLOAD_BYTES / MAX_PIXELS, or too many files",
        "too_large",
        "the file exceeds the limit of 10485760 bytes",
    ),
    415: (
        "Not an image format the gateway decodes",
        "unsupported_format",
        "not a supported image (expected one of BMP, GIF, JPEG, PNG, WEBP)",
    ),
    422: (
        "Missing or invalid field, or an undecodable image",
        "missing_file",
        "send the photo as multipart/form-data field 'file'",
    ),
    429: (
        "Too many requests in flight (gateway or Triton); see Retry-After",
        "overloaded",
        "too many requests in flight; retry shortly",
    ),
    500: ("A bug: the details are in the gateway's log", "internal_error", "an unexpected error occurred"),
    502: ("The model answered something unusable", "model_error", "the model returned an unexpected output"),
    503: (
        "Model not loaded or Triton unreachable; see Retry-After",
        "model_unavailable",
        "the model is not loaded yet",
    ),
    504: ("No answer within REQUEST_TIMEOUT_S", "timeout", "no answer within 10 s"),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the given error statuses, each with the shared model and an example."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, error, detail = ERROR_EXAMPLES[status]
        out[status] = {
            "model": ErrorBody,
            "description": description,
            "content": {"application/json": {"example": {"error": error, "detail": detail}}},
        }
    return out


def ok(
    model: type[BaseModel], description: str, example: dict[str, Any], status: int = 200
) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": model,
            "description": description,
            "content": {"application/json": {"example": example}},
        }
    }


# ------------------------------------------------------------------------------------------ prediction


class Prediction(_Strict):
    predicted_class: str = Field(description="the most probable class name")
    predicted_label: int = Field(description="its index in the model's class list")
    confidence: float = Field(description="probability of predicted_class, 0-1")
    probabilities: dict[str, float] = Field(description="class name → probability")
    uncertain: bool = Field(description="confidence under UNCERTAIN_THRESHOLD: worth a human look")
    processing_time_ms: float
    model_version: str = Field(description="the Triton model version that answered")
    request_id: str = Field(
        description="the gateway's own id for this prediction (X-Request-ID); name it in /feedback"
    )
    client_request_id: str | None = Field(
        default=None,
        description="the caller's X-Request-ID, echoed for correlation only (absent when none was sent)",
    )


PREDICTION_EXAMPLE: dict[str, Any] = {
    "predicted_class": "dog",
    "predicted_label": 1,
    "confidence": 0.9312,
    "probabilities": {"cat": 0.0688, "dog": 0.9312},
    "uncertain": False,
    "processing_time_ms": 12.41,
    "model_version": "3",
    "request_id": "5f0c8e1e2b7a4c0f9d7e3a1b2c4d6e8f",
}


class BatchPrediction(_Strict):
    """One photo of a batch that was classified."""

    index: int = Field(description="position of the file in the request")
    filename: str | None
    predicted_class: str
    predicted_label: int
    confidence: float
    probabilities: dict[str, float]
    uncertain: bool
    request_id: str | None = Field(
        default=None, description="<batch request_id>-<index>, for /feedback (only with tracking enabled)"
    )


class BatchItemError(_Strict):
    """One photo of a batch that failed; the others are still classified."""

    index: int
    filename: str | None
    error: str = Field(description="the code /predict would answer for this file alone")
    detail: str
    status: int = Field(description="the HTTP status /predict would answer for this file alone")


class BatchResult(_Strict):
    results: list[BatchPrediction | BatchItemError] = Field(description="one entry per file, in order")
    model_version: str
    request_id: str
    processing_time_ms: float
    client_request_id: str | None = Field(default=None, description="the caller's X-Request-ID, when sent")


BATCH_EXAMPLE: dict[str, Any] = {
    "results": [
        {
            "index": 0,
            "filename": "rex.jpg",
            "predicted_class": "dog",
            "predicted_label": 1,
            "confidence": 0.9312,
            "probabilities": {"cat": 0.0688, "dog": 0.9312},
            "uncertain": False,
            "request_id": "5f0c8e1e2b7a4c0f9d7e3a1b2c4d6e8f-0",
        },
        {
            "index": 1,
            "filename": "notes.txt",
            "error": "unsupported_format",
            "detail": "not a supported image (expected one of BMP, GIF, JPEG, PNG, WEBP)",
            "status": 415,
        },
    ],
    "model_version": "3",
    "request_id": "5f0c8e1e2b7a4c0f9d7e3a1b2c4d6e8f",
    "processing_time_ms": 20.7,
}

# -------------------------------------------------------------------------------------------- health


class Alive(_Strict):
    status: Literal["alive"]


class Ready(_Strict):
    status: Literal["ready"]
    model_name: str
    model_version: str


class TensorSpec(_Strict):
    name: str
    datatype: str
    shape: list[int]


class ModelDescription(_Strict):
    name: str
    version: str = Field(description="the Triton model version being served")
    input: TensorSpec
    output: str
    max_batch_size: int
    class_names: list[str]
    parameters: dict[str, str] = Field(
        description="config.pbtxt parameters, among them where the model came from: "
        "mlflow_model_name, model_version_mlflow (the registered version) and mlflow_run_id"
    )


class TritonState(_Strict):
    url: str
    protocol: str
    live: bool
    model_ready: bool
    detail: str


class Health(_Strict):
    status: Literal["ok", "unavailable"]
    ready: bool
    model: ModelDescription | None = Field(description="null until Triton has answered once")
    triton: TritonState
    in_flight: int
    draining: bool = Field(description="SIGTERM received: finishing in-flight requests, readiness 503")
    decoding: dict[str, int] = Field(
        description="decode pool: pending and stalled uploads, heavy-lane queue and worker restarts"
    )


MODEL_EXAMPLE: dict[str, Any] = {
    "name": MODEL_NAME,
    "version": "3",
    "input": {"name": INPUT_NAME, "datatype": INPUT_DATATYPE, "shape": [-1, 112, 112, 3]},
    "output": OUTPUT_NAME,
    "max_batch_size": 64,
    "class_names": ["cat", "dog"],
    "parameters": {
        "class_names": '["cat", "dog"]',
        "mlflow_model_name": "cats-dogs-classifier",
        "model_version_mlflow": "5",
        "mlflow_run_id": "0a1b2c3d4e5f",
    },
}

HEALTH_EXAMPLE: dict[str, Any] = {
    "status": "ok",
    "ready": True,
    "model": MODEL_EXAMPLE,
    "triton": {
        "url": "localhost:8001",
        "protocol": "grpc",
        "live": True,
        "model_ready": True,
        "detail": "ready",
    },
    "in_flight": 0,
    "draining": False,
    "decoding": {"pending": 0, "stalled": 0, "heavy_pending": 0, "heavy_killed": 0},
}


class RootModel(_Strict):
    name: str
    version: str
    class_names: list[str]


class Limits(_Strict):
    max_upload_bytes: int
    max_pixels: int
    max_batch: int | None


class ApiDescription(_Strict):
    name: str
    description: str
    model: RootModel | None
    ready: bool
    endpoints: dict[str, str] = Field(description="'METHOD /path' → what it does")
    limits: Limits


ROOT_EXAMPLE: dict[str, Any] = {
    "name": "cats-dogs-classifier gateway",
    "description": "Upload a photo, get cat or dog. Send Accept: text/html for the upload page.",
    "model": {"name": MODEL_NAME, "version": "3", "class_names": ["cat", "dog"]},
    "ready": True,
    "endpoints": {"POST /predict": "multipart field 'file' → label, confidence, probabilities"},
    "limits": {"max_upload_bytes": 10485760, "max_pixels": 40000000, "max_batch": 64},
}

# ------------------------------------------------------------------------------------------- tracking


class FeedbackStored(_Strict):
    request_id: str
    true_label: str
    stored: bool = Field(description="true when this call stored the label (201); false for a repeat (200)")


class Counts(_Strict):
    predictions: int
    labelled: int
    by_class: dict[str, int]


class LatencyMs(_Strict):
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class Confidence(_Strict):
    mean: float | None
    histogram: dict[str, int] = Field(description="'0.50-0.55' → predictions with that confidence")


class ClassQuality(_Strict):
    precision: float | None = Field(description="null when the class was never predicted")
    recall: float | None = Field(description="null when the class has no labelled samples")
    f1: float | None = Field(description="null when precision or recall is null")
    support: int


class MacroQuality(_Strict):
    precision: float | None
    recall: float | None
    f1: float | None


class Quality(_Strict):
    samples: int = Field(description="predictions with a /feedback label in the window")
    accuracy: float | None
    per_class: dict[str, ClassQuality]
    macro: MacroQuality


class DriftBaseline(_Strict):
    class_ratio: dict[str, float]
    mean_confidence: float
    mean_brightness: float


class Psi(_Strict):
    confidence: float
    brightness: float


class Drift(_Strict):
    samples: int
    class_ratio: dict[str, float | None]
    mean_confidence: float | None
    mean_brightness: float | None
    baseline: DriftBaseline | None = Field(description="from the export's validation set; null without one")
    psi: Psi | None = Field(default=None, description="population stability index; only with a baseline")


class CacheStats(_Strict):
    entries: int
    hits: int
    misses: int


class Stats(_Strict):
    counts: Counts
    class_ratio: dict[str, float | None]
    latency_ms: LatencyMs
    confidence: Confidence
    quality: Quality
    window: str
    generated_at: float = Field(description="Unix time")
    drift: Drift
    cache: CacheStats


STATS_EXAMPLE: dict[str, Any] = {
    "counts": {"predictions": 120, "labelled": 10, "by_class": {"cat": 50, "dog": 70}},
    "class_ratio": {"cat": 0.4167, "dog": 0.5833},
    "latency_ms": {"mean": 11.2, "p50": 10.1, "p95": 18.4, "p99": 25.0},
    "confidence": {"mean": 0.91, "histogram": {"0.50-0.55": 2, "0.95-1.00": 80}},
    "quality": {
        "samples": 10,
        "accuracy": 0.9,
        "per_class": {
            "cat": {"precision": 1.0, "recall": 0.8, "f1": 0.8889, "support": 5},
            "dog": {"precision": 0.8333, "recall": 1.0, "f1": 0.9091, "support": 5},
        },
        "macro": {"precision": 0.9167, "recall": 0.9, "f1": 0.899},
    },
    "window": "1h",
    "generated_at": 1764644400.0,
    "drift": {
        "samples": 120,
        "class_ratio": {"cat": 0.4167, "dog": 0.5833},
        "mean_confidence": 0.91,
        "mean_brightness": 112.4,
        "baseline": {
            "class_ratio": {"cat": 0.5, "dog": 0.5},
            "mean_confidence": 0.9,
            "mean_brightness": 115.0,
        },
        "psi": {"confidence": 0.02, "brightness": 0.01},
    },
    "cache": {"entries": 12, "hits": 30, "misses": 90},
}
