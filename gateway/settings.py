"""One settings object, read from `GATEWAY_*` environment variables once at start-up.

Modules never read the environment themselves: they are handed a `Settings`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Gateway configuration; every field can be set as `GATEWAY_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Where the embedded database and files live")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default is a SQLite file in data_dir")
    base_url: str = Field(default="http://127.0.0.1:8080", description="Public base URL of the gateway")
    redis_url: str | None = Field(default=None, description="Redis URL; unset = single-process mode")
    redis_stream: str = Field(default="gateway:events", description="Redis stream carrying outbox events")
    redis_claim_idle_ms: int = Field(
        default=30_000, description="Take over events a dead worker read but never acknowledged after this long"
    )
    intake_async_rows: int = Field(default=5000, description="Uploads with more rows are processed as a job (202)")
    intake_async_bytes: int | None = Field(default=None, description="Uploads larger than this are a job (202)")
    max_body_bytes: int = Field(default=10 * 1024 * 1024, description="Largest accepted request body")
    default_page_size: int = 50
    max_page_size: int = 1000
    default_handling: str = Field(default="lenient", pattern="^(strict|lenient)$")
    log_level: str = "INFO"
    log_json: bool = True
    paging_secret: str | None = Field(
        default=None, description="HMAC key for page links; generated and kept in data_dir when unset"
    )
    mllp_port: int = Field(default=2575, description="HL7 v2 MLLP port; 0 or less: no listener")
    mllp_host: str = Field(default="127.0.0.1", description="interface the MLLP listener binds to")
    load_demo: bool = False
    auth_required: bool = Field(
        default=True, description="Require SMART bearer tokens and enforce consent on every FHIR request"
    )
    token_signing_key: str | None = Field(
        default=None, description="JWK (JSON) the gateway signs access tokens with; default: a key file in data_dir"
    )
    policy_file: Path | None = Field(default=None, description="Sharing policy JSON; default profiles/policy/")
    sources_file: Path | None = Field(default=None, description="Source systems JSON; default fixtures/intake/")
    ward_list_push_time: str = Field(default="20:00", description="Local time (HH:MM) of the nightly ward-list push")
    ward_list_timezone: str = "Europe/London"
    ward_list_drop_dir: Path | None = Field(default=None, description="Drop folder; default data_dir/ward-lists")
    ward_list_receivers: str = Field(default="", description="Organization/<id>,… that always get ward lists")
    ward_list_push_enabled: bool = True
    export_retention_hours: float = Field(
        default=24.0,
        gt=0,
        description="Bulk Data export files (and their status) are deleted this long after the job ends",
    )

    @property
    def fhir_base(self) -> str:
        """The FHIR service base URL that clients and absolute references use."""
        return self.base_url.rstrip("/") + "/fhir"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gateway.db').resolve()}"

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir
