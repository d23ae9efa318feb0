"""The gateway's configuration: one validated settings class, read from the environment.

A bad value stops start-up with a message naming the variable, instead of surfacing later
as a confusing request failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.model import MODEL_NAME
from contract.paths import PREDICTIONS_DB

_DEFAULT_PORTS = {"grpc": 8001, "http": 8010}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    triton_url: str = Field(
        default="",
        description="Triton: host:port (default 127.0.0.1:8001 gRPC, :8010 HTTP); for gRPC also a "
        "comma-separated list of host:port or a gRPC target such as dns:///triton-headless:8001, "
        "balanced per request (round_robin)",
    )
    triton_max_connection_age_s: float = Field(
        default=60.0,
        ge=1.0,
        le=86400.0,
        description="the gRPC channel is recreated this often, so DNS is re-resolved and new Triton "
        "replicas receive traffic",
    )
    triton_protocol: Literal["grpc", "http"] = "grpc"
    model_name: str = Field(default=MODEL_NAME, min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="per file; larger → 413")
    max_pixels: int = Field(
        default=50_000_000, ge=1, description="width × height cap, checked before decoding"
    )
    uncertain_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="confidence below which an answer is flagged uncertain; unset: the served model's own "
        "threshold (config parameter uncertain_threshold, chosen on its validation split), else 0.6",
    )
    request_timeout_s: float = Field(default=10.0, gt=0, description="per-request deadline → 504")
    max_in_flight: int = Field(default=64, ge=1, description="concurrent predictions; more → 429")
    decode_threads: int = Field(default=2, ge=1, le=64, description="bounded pool that decodes uploads")
    model_refresh_s: float = Field(
        default=5.0, gt=0, description="how often model readiness/version is checked"
    )
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After on 429/503")
    # Above the idle timeout of the load balancer or proxy in front (60 s on most), so that it, not the
    # gateway, closes an idle connection: when the gateway closes first, a request the client sends at
    # that moment is reset (a 256-client test hit this with uvicorn's 5 s default).
    keep_alive_s: float = Field(default=75.0, gt=0, description="idle HTTP keep-alive before closing")
    # A load balancer needs a moment to stop sending to a replica that is going away (k8s: endpoint
    # removal and readiness probes; nginx: its next failed connect). For this long after SIGTERM the
    # gateway keeps serving but answers /health/ready with 503; then it stops accepting, lets
    # requests in flight finish (each is bounded by REQUEST_TIMEOUT_S) and exits. SIGINT skips it.
    drain_timeout_s: float = Field(
        default=15.0, ge=0.0, le=300.0, description="seconds served as not-ready after SIGTERM before exit"
    )

    # Connection limits (gateway/server.py, gateway/limits.py): cheap requests must not take the
    # gateway down while /health/ready says 200.
    max_connections: int = Field(
        default=1000, ge=1, le=1_000_000, description="open client connections; more → 503 and close"
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="a request head must arrive within (from connect or 1st byte)"
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, le=1024 * 1024, description="request line + headers; larger → 431"
    )
    body_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="a request body must arrive within; slower → 408"
    )
    max_batch_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="total body of one /predict/batch; larger → 413"
    )
    max_concurrent_batches: int = Field(
        default=4, ge=1, le=256, description="/predict/batch requests decoding at once; more → 429"
    )
    # Decode cost bounds, checked before the expensive work (imaging.DecodeLimits).
    max_jpeg_scans: int = Field(
        default=64, ge=1, le=10_000, description="SOS markers in one JPEG (progressive scans); more → 422"
    )
    max_decode_cost: float = Field(
        default=1000.0,
        gt=0,
        description="megapixels × JPEG scans of one upload (50 MP × 20 scans = 1000); more → 413",
    )
    decode_heavy_cost: float = Field(
        default=150.0,
        gt=0,
        description="uploads costing more decode on their own single thread, apart from ordinary photos",
    )
    decode_heavy_queue: int = Field(
        default=2, ge=1, le=64, description="heavy decodes running or waiting; more → 503 decode_busy"
    )
    decode_stall_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="a decode running longer counts as stalled; all decode threads stalled → not ready",
    )
    stats_cache_s: float = Field(
        default=10.0, ge=0, le=3600, description="/stats answers are reused this long (one computation)"
    )

    # Performance tracking (prediction log, feedback, stats, drift) and the response cache.
    tracking_enabled: bool = True
    tracking_db: Path = Field(default=Path(PREDICTIONS_DB), description="SQLite log (WAL)")
    tracking_database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:pass@host:port/db: a prediction log shared by every replica; "
        "unset: the embedded SQLite TRACKING_DB (one machine)",
    )
    tracking_pool_size: int = Field(default=4, ge=1, le=64, description="PostgreSQL connections per process")
    # /predict queues its log row and answers; a writer thread commits the queue in groups
    # (tracking/batch_writer.py). A crash (kill -9, power loss) loses only rows not committed yet, never
    # acknowledged feedback (written synchronously, after the row it labels).
    tracking_flush_interval_ms: float = Field(
        default=5.0,
        ge=0.0,
        le=1000.0,
        description="prediction-log rows are committed in groups at most this long after their answer "
        "(0: as soon as the writer is free); a crash loses the rows of the last interval (feedback on an "
        "unknown id waits this + 100 ms and asks once more: another replica may not have committed it yet)",
    )
    tracking_queue_size: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="prediction-log rows accepted but not yet committed (the most a crash can lose); "
        "when full (database down or slow) new rows are dropped, counted in prediction_log_dropped_total",
    )
    api_key: SecretStr | None = Field(default=None, description="X-API-Key required by /feedback when set")
    quality_window: str = Field(default="1h", description="window of the live accuracy/F1 gauges")
    tracking_refresh_s: float = Field(default=15.0, gt=0, description="how often live gauges are recomputed")
    stats_snapshot_path: Path | None = Field(
        default=Path("run/stats.json"), description="JSON stats snapshot, written atomically; empty: none"
    )
    stats_snapshot_interval_s: float = Field(default=60.0, gt=0)
    retention_max_age_days: float | None = Field(default=30.0, gt=0)
    retention_max_rows: int | None = Field(default=1_000_000, ge=1)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    cache_ttl_s: float = Field(default=300.0, ge=0, description="0 disables the response cache")
    cache_max_entries: int = Field(default=10_000, ge=0)
    drift_window: int = Field(
        default=1000, ge=10, description="recent predictions compared with the baseline"
    )
    max_json_bytes: int = Field(
        default=16 * 1024, ge=256, description="cap on JSON bodies (/feedback), chunked or not"
    )

    @field_validator("api_key", "stats_snapshot_path", "tracking_database_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("tracking_database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (the value is not shown: it holds a password)")
        return value

    @field_validator("quality_window")
    @classmethod
    def _window(cls, value: str) -> str:
        from tracking.tracker import parse_window

        parse_window(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("triton_protocol", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_url(self) -> Settings:
        url = self.triton_url.strip()
        if not url:
            url = f"127.0.0.1:{_DEFAULT_PORTS[self.triton_protocol]}"
        if self.triton_protocol == "grpc":
            from tritonlink import parse_target

            target = parse_target(url)
            # A single server keeps its host:port form; a list or a gRPC target is kept as given.
            self.triton_url = target.target if len(target.endpoints) == 1 else url
            return self
        # tritonclient takes host:port; accept a pasted http:// URL for the HTTP protocol too.
        for scheme in ("http://", "grpc://"):
            if url.startswith(scheme):
                url = url[len(scheme) :]
        url = url.rstrip("/")
        host, _, port = url.rpartition(":")
        if not host or "," in host or "/" in host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(
                f"TRITON_URL must look like host:port with TRITON_PROTOCOL=http (several servers or a "
                f"dns:/// target need gRPC), got {self.triton_url!r}"
            )
        self.triton_url = url
        return self
