"""The one configuration object. Every knob is an environment variable prefixed ``CAREPATH_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development-only secrets. Refused outside development so that a production deployment that
# forgot to configure a secret fails at start-up instead of signing links with a public value.
DEV_PLACEHOLDER_SECRET = "dev-only-insecure-secret-change-me"  # noqa: S105 - refused below

Environment = Literal["development", "test", "production"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CAREPATH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = "development"
    log_level: str = "INFO"
    # None means: JSON lines everywhere except development, where humans read the console.
    log_json: bool | None = None

    data_dir: Path = Path("var")
    database_url: str = "sqlite+aiosqlite:///var/carepath.db"
    database_echo: bool = False

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "carepath"
    temporal_tls: bool = False
    temporal_api_key: SecretStr | None = None
    temporal_ui_url: str = "http://localhost:8233"
    # How long the API waits for a workflow query before answering from the database instead.
    temporal_query_timeout_seconds: float = Field(default=5.0, gt=0)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Base of the links sent to patients; must be reachable from their phones in production.
    public_base_url: str = "http://localhost:8000"
    hospital_name: str = "示例医院"
    hospital_phone: str = "12320"
    timezone: str = "Asia/Shanghai"

    link_secret: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    his_webhook_secret: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    his_webhook_tolerance_seconds: int = Field(default=300, ge=30, le=3600)
    his_base_url: str = "http://127.0.0.1:8081"
    # Sent as X-Api-Key on our calls to the HIS query interface (HIS-2).
    his_api_key: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    his_timeout_seconds: float = Field(default=5.0, gt=0)

    # Lets a discharge event ask for a compressed clock (a day in seconds) so a demo or an
    # end-to-end test can watch a multi-day plan finish. Never honoured in production.
    allow_demo_clock: bool | None = None

    message_channel: Literal["outbox"] = "outbox"

    @model_validator(mode="after")
    def _refuse_unsafe_production_values(self) -> Settings:
        if self.environment == "development":
            return self
        for name in ("link_secret", "his_webhook_secret", "his_api_key"):
            value: SecretStr = getattr(self, name)
            secret = value.get_secret_value()
            if secret == DEV_PLACEHOLDER_SECRET or len(secret) < 32:
                raise ValueError(
                    f"CAREPATH_{name.upper()} must be set to a random value of at least 32 "
                    f"characters outside development"
                )
        if self.environment == "production" and self.allow_demo_clock:
            raise ValueError("CAREPATH_ALLOW_DEMO_CLOCK must be false in production")
        return self

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.environment != "development"

    @property
    def demo_clock_allowed(self) -> bool:
        if self.allow_demo_clock is not None:
            return self.allow_demo_clock
        return self.environment != "production"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
