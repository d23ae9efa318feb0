"""POST /predict and POST /predict/batch: the routes and their OpenAPI description.

FastAPI parses the multipart upload(s); gateway/prediction_service.py does the rest (limits,
deadline, decode → Triton, cache, log) and builds the JSON the routes return.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import Response

from gateway import schemas
from gateway.prediction_service import PredictionServiceDep

router = APIRouter(tags=["prediction"])


@router.post(
    "/predict",
    summary="Classify one photo (multipart field `file`)",
    # The answer is a JSONResponse built by the service; the models below only document it.
    response_model=None,
    responses=schemas.ok(
        schemas.Prediction,
        "The label, its confidence and every class's probability",
        schemas.PREDICTION_EXAMPLE,
    )
    | schemas.error_responses(400, 413, 415, 422, 429, 500, 502, 503, 504),
)
async def predict(
    request: Request,
    service: PredictionServiceDep,
    file: Annotated[UploadFile | None, File(description="a JPEG, PNG, WebP, GIF or BMP photo")] = None,
) -> Response:
    return await service.predict(request, file)


@router.post(
    "/predict/batch",
    summary="Classify up to max-batch photos (repeated field `files`) in one call",
    response_model=None,
    responses=schemas.ok(
        schemas.BatchResult,
        "One result per file; a file that fails carries its own error and does not fail the others",
        schemas.BATCH_EXAMPLE,
    )
    | schemas.error_responses(400, 413, 422, 429, 500, 502, 503, 504),
)
async def predict_batch(
    request: Request,
    service: PredictionServiceDep,
    files: Annotated[
        list[UploadFile] | None, File(description="photos, at most the model's max batch")
    ] = None,
) -> Response:
    return await service.predict_batch(request, files)
