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
    max_body_bytes: int = Field(default=10 * 1024 * 1024, description="Largest accepted request body")
    default_page_size: int = 50
    max_page_size: int = 1000
    default_handling: str = Field(default="lenient", pattern="^(strict|lenient)$")
    log_level: str = "INFO"
    log_json: bool = True
    paging_secret: str | None = Field(
        default=None, description="HMAC key for page links; generated and kept in data_dir when unset"
    )
    mllp_port: int = 2575
    load_demo: bool = False

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
