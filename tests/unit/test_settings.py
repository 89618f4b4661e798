from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.dev_keys import generate_pair
from core.settings import Settings

STRONG = "x" * 40
PAIR = generate_pair()
# Everything production needs, each test taking one thing away.
PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "link_secret": STRONG,
    "audit_key": STRONG,
    "his_webhook_secret": STRONG,
    "his_api_key": STRONG,
    "enterprise_webhook_secret": STRONG,
    "insurance_app_secret": STRONG,
    "exam_api_key": STRONG,
    "exam_webhook_secret": STRONG,
    "identity_api_key": STRONG,
    "wechatpay_private_key": PAIR.private_pem,
    "wechatpay_platform_public_key": PAIR.public_pem,
    "wechatpay_apiv3_key": "k" * 32,
    "allow_demo_clock": False,
    "data_keys": '{"k2026": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}',
    "data_key_id": "k2026",
    "blind_index_key": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
}


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
        Settings(_env_file=None, **(PRODUCTION | {"allow_demo_clock": True}))


def test_production_with_real_secrets_logs_json_and_has_no_demo_clock() -> None:
    settings = Settings(
        _env_file=None, database_url="postgresql+asyncpg://carepath@db/carepath", **PRODUCTION
    )
    assert settings.json_logs is True
    assert not settings.demo_clock_allowed
    assert not settings.is_sqlite


def test_environment_variables_configure_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_TEMPORAL_ADDRESS", "temporal.hospital.internal:7233")
    monkeypatch.setenv("CAREPATH_HOSPITAL_NAME", "西昌市人民医院")
    settings = Settings(_env_file=None)
    assert settings.temporal_address == "temporal.hospital.internal:7233"
    assert settings.hospital_name == "西昌市人民医院"


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ({"insurance_app_secret": None}, "CAREPATH_INSURANCE_APP_SECRET"),
        ({"wechatpay_private_key": None}, "CAREPATH_WECHATPAY_PRIVATE_KEY"),
        ({"wechatpay_platform_public_key": None}, "CAREPATH_WECHATPAY_PLATFORM_PUBLIC_KEY"),
        ({"wechatpay_apiv3_key": None}, "CAREPATH_WECHATPAY_APIV3_KEY"),
        ({"wechatpay_apiv3_key": "too-short"}, "exactly 32 bytes"),
    ],
)
def test_production_refuses_to_take_payments_without_real_keys(
    missing: dict[str, Any], named: str
) -> None:
    values = {k: v for k, v in (PRODUCTION | missing).items() if v is not None}
    with pytest.raises(ValidationError, match=named):
        Settings(_env_file=None, **values)


def test_only_production_refuses_static_tokens_of_people() -> None:
    assert Settings(_env_file=None).static_tokens_for_people
    assert Settings(
        _env_file=None, **(PRODUCTION | {"environment": "test"})
    ).static_tokens_for_people
    assert not Settings(_env_file=None, **PRODUCTION).static_tokens_for_people


def test_sign_in_limits_must_be_sensible() -> None:
    with pytest.raises(ValidationError, match="staff_max_failed_sign_ins"):
        Settings(_env_file=None, staff_max_failed_sign_ins=0)
    with pytest.raises(ValidationError, match="staff_password_memory_kib"):
        Settings(_env_file=None, staff_password_memory_kib=1024)


@pytest.mark.parametrize("audit_key", [None, "too-short"])
def test_production_refuses_the_placeholder_or_a_short_audit_key(audit_key: str | None) -> None:
    values = {k: v for k, v in (PRODUCTION | {"audit_key": audit_key}).items() if v is not None}
    with pytest.raises(ValidationError, match="CAREPATH_AUDIT_KEY"):
        Settings(_env_file=None, **values)


@pytest.mark.parametrize(
    "override",
    [
        {"data_keys": None, "data_key_id": None},
        {"blind_index_key": None},
        # The development key in another spelling (base64) is still the development key.
        {"data_keys": '{"k2026": "ABEiM0RVZneImaq7zN3u/w=="}'},
    ],
)
def test_production_refuses_the_development_data_keys(override: dict[str, Any]) -> None:
    values = {k: v for k, v in (PRODUCTION | override).items() if v is not None}
    with pytest.raises(ValidationError, match="CAREPATH_DATA_KEYS and CAREPATH_BLIND_INDEX_KEY"):
        Settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"data_key_id": "k2025"}, "current data key id 'k2025'"),
        ({"data_keys": '{"k2026": "tooshort"}'}, "CAREPATH_DATA_KEYS\\['k2026'\\]"),
        ({"data_keys": "[]"}, "JSON object"),
        ({"blind_index_key": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}, "differ from every data key"),
        (
            {"data_keys": '{"k:1": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}', "data_key_id": "k:1"},
            "key id",
        ),
    ],
)
def test_malformed_data_keys_are_refused_in_every_environment(
    override: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings(_env_file=None, **(PRODUCTION | override | {"environment": "development"}))
