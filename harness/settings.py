"""Settings and shared secrets for tests and benchmarks: never used outside them."""

from __future__ import annotations

import json
from typing import Any

from core.dev_keys import DevPaymentKeys, generate_pair
from core.settings import Settings

TEST_SECRET = "test-link-secret-0123456789abcdef0123456789"
TEST_WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef012345"
TEST_HIS_API_KEY = "test-his-api-key-0123456789abcdef0123456789"
TEST_ENTERPRISE_SECRET = "test-enterprise-secret-0123456789abcdef0123"
TEST_AUDIT_KEY = "test-audit-key-0123456789abcdef0123456789ab"


# Generated once per test session: the merchant's pair (our requests) and the simulated
# provider platform's pair (its answers and notifications).
TEST_PAYMENT_KEYS = DevPaymentKeys(merchant=generate_pair(), platform=generate_pair())
TEST_APIV3_KEY = "test-apiv3-key-0123456789abcdefg"
TEST_INSURANCE_SECRET = "test-insurance-secret-0123456789abcdef0123"
# Encryption at rest (SEC-4): the data keys (current: "t1") and the blind index key.
TEST_DATA_KEY_ID = "t1"
TEST_EXAM_API_KEY = "test-exam-api-key-0123456789abcdef0123456789"
TEST_EXAM_SECRET = "test-exam-push-secret-0123456789abcdef01234"
TEST_IDENTITY_API_KEY = "test-identity-api-key-0123456789abcdef012345"
TEST_DATA_KEYS = {"t1": "74657374646174616b6579302d746573"}
TEST_BLIND_INDEX_KEY = "74657374626c696e642d696e6465782d"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": "sqlite+aiosqlite:///:memory:",
        "link_secret": TEST_SECRET,
        "audit_key": TEST_AUDIT_KEY,
        "his_webhook_secret": TEST_WEBHOOK_SECRET,
        "his_api_key": TEST_HIS_API_KEY,
        "enterprise_webhook_secret": TEST_ENTERPRISE_SECRET,
        "insurance_app_secret": TEST_INSURANCE_SECRET,
        "exam_api_key": TEST_EXAM_API_KEY,
        "exam_webhook_secret": TEST_EXAM_SECRET,
        "identity_api_key": TEST_IDENTITY_API_KEY,
        "wechatpay_private_key": TEST_PAYMENT_KEYS.merchant.private_pem,
        "wechatpay_platform_public_key": TEST_PAYMENT_KEYS.platform.public_pem,
        "wechatpay_apiv3_key": TEST_APIV3_KEY,
        "public_base_url": "http://patient.test",
        "allow_demo_clock": True,
        "log_json": False,
        "data_keys": json.dumps(TEST_DATA_KEYS),
        "data_key_id": TEST_DATA_KEY_ID,
        "blind_index_key": TEST_BLIND_INDEX_KEY,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)
