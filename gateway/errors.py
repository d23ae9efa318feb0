"""Every failure a client can see: a status, a stable ``error`` code and a safe ``detail``.

Exception text and stack traces never reach a response; they go to the log.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.triton_backend import TritonError
from imaging import ImageError

# imaging.ImageError.kind → HTTP status.
IMAGE_ERROR_STATUS: dict[str, int] = {
    "empty": 400,
    "too_large": 413,
    "too_many_pixels": 413,
    "too_costly": 413,
    "too_many_scans": 422,
    "unsupported_format": 415,
    "corrupt": 422,
    "too_small": 422,
}

TRITON_ERROR_STATUS: dict[str, int] = {
    "unavailable": 503,
    "rejected": 429,
    "timeout": 504,
    "model_error": 502,
}


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def from_image_error(exc: ImageError) -> ApiError:
    return ApiError(IMAGE_ERROR_STATUS.get(exc.kind, 422), exc.kind, exc.detail)


def from_triton_error(exc: TritonError, retry_after_s: int) -> ApiError:
    status = TRITON_ERROR_STATUS[exc.kind]
    headers = {"Retry-After": str(retry_after_s)} if status in (429, 503) else {}
    error = {"unavailable": "model_unavailable", "rejected": "overloaded"}.get(exc.kind, exc.kind)
    return ApiError(status, error, exc.detail, headers=headers)


def error_response(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(p) for p in err.get("loc", ())[1:]) or "body" for err in exc.errors()})
        return error_response(422, "invalid_request", f"missing or invalid field(s): {', '.join(fields)}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            408: "request_timeout",
            413: "too_large",
        }.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, error, detail, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        import structlog

        structlog.get_logger("gateway").exception("unhandled_error", path=request.url.path)
        return error_response(500, "internal_error", "an unexpected error occurred")
