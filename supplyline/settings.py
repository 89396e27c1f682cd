"""Settings read from the environment (``SUPPLYLINE_*``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReadLimits(BaseSettings):
    """Bounds that protect a run against hostile or broken files."""

    model_config = SettingsConfigDict(env_prefix="SUPPLYLINE_LIMIT_", frozen=True)

    max_bytes: int = Field(
        default=2 * 1024**3, description="Largest file, after decompression, in bytes."
    )
    max_inflate_ratio: int = Field(
        default=200, description="Largest decompressed/compressed size ratio (zip-bomb guard)."
    )
    max_field_chars: int = Field(default=100_000, description="Longest single value.")
    max_columns: int = Field(default=1_000, description="Most columns in a file.")


class Settings(BaseSettings):
    """Where Supplyline keeps its files and its database."""

    model_config = SettingsConfigDict(env_prefix="SUPPLYLINE_")

    home: Path = Field(
        default=Path("~/.supplyline"),
        description="Local storage for error files and archives.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of Supplyline's database; default: an SQLite file in home.",
    )
    retire_guard_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "A full feed that would retire more than this share of a supplier's active products "
            "is held for an operator to release (a supplier's own setting wins)."
        ),
    )
    stale_processing_minutes: int = Field(
        default=60,
        ge=1,
        description=(
            "A file still 'processing' after this long is taken to have died with its run: "
            "the same content may then be ingested again."
        ),
    )
    api_base_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Where the order intake API is served: the base of connectors' endpoint URLs.",
    )
    actor: str | None = Field(
        default=None,
        description="Who the audit trail names for changes made here (default: the OS user).",
    )

    sftp_stable_seconds: float = Field(
        default=30,
        ge=0,
        description=(
            "An SFTP file is taken once its size and mtime held still this long (or when a "
            "<name>.done / <name>.ok marker is there)."
        ),
    )
    sftp_retries: int = Field(
        default=4, ge=0, description="Retries of an SFTP listing, download or upload that failed."
    )
    sftp_retry_delay_seconds: float = Field(
        default=5,
        ge=0,
        description="First delay between SFTP retries; each next one is twice as long (+ jitter).",
    )

    po_send_lease_seconds: float = Field(
        default=300,
        gt=0,
        description=(
            "How long one run may spend sending a batch of POs to a supplier before another "
            "run may take them over (a run never starts a request that could outlive it)."
        ),
    )
    po_max_send_attempts: int = Field(
        default=10,
        ge=1,
        description="Runs that may try to send a PO before it is marked failed.",
    )
    order_batch_size: int = Field(
        default=2500,
        ge=1,
        le=5000,
        description=(
            "Orders routed, or POs sent, per task run (each task run costs a few tenths of a "
            "second of Prefect's time: a sync of 10,000 orders spent 4 s in Prefect with 1,000 "
            "per task, 1 s with 2,500)."
        ),
    )

    push_batch_size: int = Field(
        default=500,
        ge=1,
        le=5000,
        description="PO events planned, or deliveries claimed for one connector, per batch.",
    )
    push_retry_delay_seconds: float = Field(
        default=30,
        ge=0,
        description=(
            "First wait before a failed delivery to a retailer is tried again; each next wait "
            "is twice as long, with jitter."
        ),
    )
    push_max_retry_delay_seconds: float = Field(
        default=3600, gt=0, description="Longest wait between two tries of a delivery."
    )
    push_max_attempts: int = Field(
        default=48,
        ge=1,
        description="Tries of a delivery to a retailer before it is marked failed.",
    )
    push_lease_seconds: float = Field(
        default=300,
        gt=0,
        description=(
            "How long one run may spend delivering a connector's events before another run "
            "may take them over (no delivery starts that could outlive it)."
        ),
    )
    feed_stale_hours: float = Field(
        default=26,
        gt=0,
        description=(
            "Feed health: a supplier that sent no catalog file for this long is stale (a daily "
            "feed with two hours' slack); the feed-health flow's stale_hours names exceptions."
        ),
    )
    feed_recent_files: int = Field(
        default=3, ge=1, description="Feed health: the last N files make the recent rejection rate."
    )
    feed_baseline_files: int = Field(
        default=20,
        ge=1,
        description="Feed health: the files before the recent ones that make the baseline rate.",
    )
    feed_rejection_jump: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description=(
            "Feed health: the recent rejection rate exceeding the baseline by this much (0.2: "
            "20 percentage points) raises an event."
        ),
    )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def errors_dir(self) -> Path:
        return self.home_dir / "errors"

    @property
    def archive_dir(self) -> Path:
        return self.home_dir / "archive"

    @property
    def incoming_dir(self) -> Path:
        """Where files downloaded from SFTP wait until they are claimed."""
        return self.home_dir / "incoming"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'supplyline.db'}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
