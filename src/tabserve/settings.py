"""The one settings object: every option also reads from a `TABSERVE_*` environment variable."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tabserve.cpus import usable_cores


class Settings(BaseSettings):
    """tabserve's configuration; CLI flags override these, which override the defaults."""

    model_config = SettingsConfigDict(env_prefix="TABSERVE_", extra="ignore")

    # registry
    home: Path = Path(".tabserve")
    registry_url: SecretStr | None = None  # postgresql://... keeps index and files in Postgres
    db_password: SecretStr | None = None
    db_password_file: Path | None = None
    allow_version_mismatch: bool = False  # load artifacts trained with another scikit-learn

    # server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    grpc_port: int | None = Field(None, ge=0, le=65535)  # OIP gRPC service; off unless set
    workers: int = Field(default_factory=usable_cores, ge=1)
    request_timeout: float = Field(30.0, gt=0)
    graceful_timeout: float = Field(30.0, gt=0)
    default_model: str | None = None
    models: list[str] = []  # NAME, NAME:VERSION or NAME@ALIAS; empty = every model
    max_batch_rows: int = Field(10_000, ge=1)  # largest request accepted
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1)
    batch_max_rows: int = Field(64, ge=1)  # adaptive batching cut
    batch_max_wait_ms: float = Field(2.0, ge=0)
    threads_per_worker: int | None = None  # intra-op threads; default cores // workers
    max_in_flight: int = Field(1024, ge=1)  # per worker; past it 503 + Retry-After
    registry_poll: float = Field(2.0, gt=0)
    shadow: list[str] = []  # candidate versions sent a copy of each live request

    # logs and monitoring
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    access_log: bool = False
    prediction_log: bool = True
    prediction_log_url: SecretStr | None = None  # postgresql://...; default SQLite in home
    prediction_log_retention_days: int = Field(30, ge=1)
    prediction_log_hash_features: bool = False
    prediction_log_sync: bool = False
    prediction_log_flush_ms: float = Field(50.0, gt=0)
    prediction_log_spool_max_bytes: int = Field(1024 * 1024 * 1024, ge=1024)
    on_log_full: Literal["refuse", "drop"] = "refuse"

    # security
    api_tokens: SecretStr | None = None  # comma-separated bearer tokens
    api_tokens_file: Path | None = None
    open_health: bool = True
    open_metrics: bool = True
    admin_token: SecretStr | None = None

    @field_validator("models", "shadow", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [m for m in value.replace(",", " ").split() if m]
        return value

    def database_password(self) -> str | None:
        """The database password from TABSERVE_DB_PASSWORD or the file TABSERVE_DB_PASSWORD_FILE."""
        if self.db_password is not None:
            return self.db_password.get_secret_value()
        if self.db_password_file is not None:
            return self.db_password_file.read_text(encoding="utf-8").strip()
        return None

    def intra_op_threads(self) -> int:
        """Threads each worker's runtime may use, so that workers x threads <= usable cores."""
        if self.threads_per_worker is not None:
            return self.threads_per_worker
        return max(1, usable_cores() // self.workers)
