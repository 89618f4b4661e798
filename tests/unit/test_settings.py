from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings

STRONG = "x" * 40


def test_development_defaults_run_without_configuration() -> None:
    settings = Settings(_env_file=None)
    assert settings.environment == "development"
    assert settings.is_sqlite
    assert settings.json_logs is False
    assert settings.demo_clock_allowed


def test_placeholder_secrets_are_refused_outside_development() -> None:
    with pytest.raises(ValidationError, match="CAREPATH_LINK_SECRET"):
        Settings(_env_file=None, environment="production", allow_demo_clock=False)


def test_production_refuses_the_demo_clock() -> None:
    with pytest.raises(ValidationError, match="ALLOW_DEMO_CLOCK"):
        Settings(
            _env_file=None, environment="production", link_secret=STRONG,
            his_webhook_secret=STRONG, his_api_key=STRONG, allow_demo_clock=True,
            enterprise_webhook_secret=STRONG,
        )  # fmt: skip


def test_production_with_real_secrets_logs_json_and_has_no_demo_clock() -> None:
    settings = Settings(
        _env_file=None, environment="production", link_secret=STRONG,
        his_webhook_secret=STRONG, his_api_key=STRONG, enterprise_webhook_secret=STRONG,
        database_url="postgresql+asyncpg://carepath@db/carepath",
    )  # fmt: skip
    assert settings.json_logs is True
    assert not settings.demo_clock_allowed
    assert not settings.is_sqlite


def test_environment_variables_configure_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_TEMPORAL_ADDRESS", "temporal.hospital.internal:7233")
    monkeypatch.setenv("CAREPATH_HOSPITAL_NAME", "西昌市人民医院")
    settings = Settings(_env_file=None)
    assert settings.temporal_address == "temporal.hospital.internal:7233"
    assert settings.hospital_name == "西昌市人民医院"
