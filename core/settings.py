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
# The simulator's APIv3 key (exactly 32 bytes, as WeChat Pay requires); development only.
DEV_APIV3_KEY = "dev-only-apiv3-key-0123456789abc"

# Development-only data keys (SEC-4, encryption at rest): public, so refused outside development.
DEV_DATA_KEY_ID = "dev1"
DEV_DATA_KEYS = '{"dev1": "00112233445566778899aabbccddeeff"}'
DEV_BLIND_INDEX_KEY = "ffeeddccbbaa99887766554433221100"
_DEV_KEYS = frozenset(
    bytes.fromhex(k) for k in ("00112233445566778899aabbccddeeff", DEV_BLIND_INDEX_KEY)
)

Environment = Literal["development", "test", "production"]
KNOWN_CHANNELS = ("wechat", "sms", "outbox")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CAREPATH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = "development"
    log_level: str = "INFO"
    # None means: JSON lines everywhere except development, where humans read the console.
    log_json: bool | None = None

    data_dir: Path = Path("var")
    # Where uploaded photos and signatures are kept, encrypted; None: <data_dir>/uploads.
    upload_dir: Path | None = None
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

    # How much lower a `workers.main --queues main` process runs on the CPU than the review one
    # (os.nice): on a saturated machine the review deadlines get the CPU first (RX-4).
    worker_main_niceness: int = Field(default=10, ge=0, le=19)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # API processes `make run` starts (uvicorn --workers); 0: one per core. They share nothing
    # but the database, so any number serves the same answers.
    api_processes: int = Field(default=0, ge=0)
    # Base of the links sent to patients; must be reachable from their phones in production.
    public_base_url: str = "http://localhost:8000"
    hospital_name: str = "示例医院"
    hospital_phone: str = "12320"
    timezone: str = "Asia/Shanghai"

    link_secret: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    # Keys the HMAC-SM3 chain of the audit trail (SEC-2). Changing it makes the existing chain
    # unverifiable: keep it for the life of the database, outside the database.
    audit_key: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    his_webhook_secret: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    his_webhook_tolerance_seconds: int = Field(default=300, ge=30, le=3600)
    his_base_url: str = "http://127.0.0.1:8081"
    # Sent as X-Api-Key on our calls to the HIS query interface (HIS-2).
    his_api_key: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    his_timeout_seconds: float = Field(default=5.0, gt=0)

    # Service enterprises for herbal prescriptions (RX-6): code -> base URL of their order API.
    enterprise_base_urls: dict[str, str] = Field(
        default_factory=lambda: {"ENT-DEMO": "http://127.0.0.1:8084"}
    )
    # Shared with the enterprises; signs the status updates they post to us.
    enterprise_webhook_secret: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    enterprise_timeout_seconds: float = Field(default=10.0, gt=0)

    # The physical-exam vendor (PX-1..8): its interface (US-K1, US-K2) and the secret that
    # signs its pushes to us (US-H1..US-H5).
    exam_base_url: str = "http://127.0.0.1:8087"
    exam_api_key: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    exam_webhook_secret: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    exam_timeout_seconds: float = Field(default=10.0, gt=0)
    # How long the doctor has to review a personalised exam list before it is booked with
    # the required items only.
    exam_review_hours: float = Field(default=24.0, gt=0, le=24 * 14)

    # The real-name identity service (实名认证) a home-nursing order is checked against.
    identity_base_url: str = "http://127.0.0.1:8088"
    identity_api_key: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    identity_timeout_seconds: float = Field(default=5.0, gt=0)

    # Lets a discharge event ask for a compressed clock (a day in seconds) so a demo or an
    # end-to-end test can watch a multi-day plan finish. Never honoured in production.
    allow_demo_clock: bool | None = None

    # Hospital this deployment serves by default; per-hospital settings live in the database.
    default_hospital_code: str = "default"

    # Messaging (MSG-*). Channels in fallback order; a patient's preferred one goes first.
    # "outbox" stores and logs without sending: the safe default until providers are configured.
    message_channels: str = "outbox"
    sms_max_segments: int = Field(default=4, ge=1, le=10)
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    twilio_from_number: str = "+15005550006"
    twilio_api_base_url: str = "https://api.twilio.com"
    # Sends per second across all workers, enforced by Temporal on the channel's task queue.
    twilio_rate_per_second: float = Field(default=20.0, gt=0)
    wechat_appid: str = "wx0000000000000000"
    wechat_secret: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    # The token configured for the official account's server URL (event push signatures).
    wechat_token: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    wechat_api_base_url: str = "https://api.weixin.qq.com"
    # Our template code -> the template id WeChat assigned to this official account (JSON).
    wechat_template_ids: dict[str, str] = Field(default_factory=dict)
    wechat_rate_per_second: float = Field(default=50.0, gt=0)
    channel_timeout_seconds: float = Field(default=10.0, gt=0)

    # Payments (PAY-*): the insurance centre and the payment provider (WeChat Pay API v3).
    insurance_base_url: str = "http://127.0.0.1:8086"
    insurance_app_id: str = "carepath"
    insurance_app_secret: SecretStr = SecretStr(DEV_PLACEHOLDER_SECRET)
    insurance_timeout_seconds: float = Field(default=10.0, gt=0)
    wechatpay_api_base_url: str = "https://api.mch.weixin.qq.com"
    wechatpay_mchid: str = "1900000001"
    wechatpay_appid: str = "wx0000000000000000"
    # The merchant API certificate's serial number, and its private key (PEM text or a path).
    wechatpay_serial_no: str = "DEV0000000000000000000000000000000000000"
    wechatpay_private_key: SecretStr | None = None
    # The platform (WeChat Pay) public key that signs answers and notifications (PEM or path).
    wechatpay_platform_public_key: str | None = None
    wechatpay_apiv3_key: SecretStr = SecretStr(DEV_APIV3_KEY)
    wechatpay_timeout_seconds: float = Field(default=10.0, gt=0)
    # Local hour at which yesterday's provider bill is reconciled (PAY-8).
    reconciliation_hour: int = Field(default=10, ge=0, le=23)

    # Staff sign-in (SEC-5). A session ends at its absolute lifetime or after being idle, and
    # an account locks for a while after too many failed sign-ins in a row.
    staff_session_hours: float = Field(default=8.0, gt=0, le=7 * 24)
    staff_session_idle_minutes: float = Field(default=30.0, gt=0, le=7 * 24 * 60)
    staff_max_failed_sign_ins: int = Field(default=5, ge=1, le=100)
    staff_lockout_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    # argon2id cost (RFC 9106's second recommended profile by default). Raising it takes effect
    # for each account at its next sign-in, when its hash is recomputed.
    staff_password_memory_kib: int = Field(default=65536, ge=19456, le=4 * 1024 * 1024)
    staff_password_time_cost: int = Field(default=3, ge=1, le=20)
    staff_password_parallelism: int = Field(default=4, ge=1, le=16)
    # The issuer authenticator apps show beside an administrator's TOTP entry.
    staff_totp_issuer: str = "CarePath"

    # Encryption at rest (SEC-4): SM4 data keys as a JSON object, key id -> 16-byte key (32 hex
    # digits or base64); new values are sealed with the current one, older ones still decrypt
    # until the key-rotation workflow re-encrypted their rows. The blind index key (HMAC-SM3 for
    # exact-match lookups by phone and ID-card number) is separate and is not rotated.
    data_keys: SecretStr = SecretStr(DEV_DATA_KEYS)
    data_key_id: str = DEV_DATA_KEY_ID
    blind_index_key: SecretStr = SecretStr(DEV_BLIND_INDEX_KEY)

    @model_validator(mode="after")
    def _refuse_unsafe_production_values(self) -> Settings:
        from core.crypto import keyring_from_settings

        # A malformed key map fails at start-up, in every environment.
        keyring = keyring_from_settings(self)
        unknown = set(self.enabled_channels) - set(KNOWN_CHANNELS)
        if unknown or not self.enabled_channels:
            raise ValueError(
                f"CAREPATH_MESSAGE_CHANNELS must list channels among {', '.join(KNOWN_CHANNELS)}"
            )
        if len(self.wechatpay_apiv3_key.get_secret_value().encode()) != 32:
            raise ValueError("CAREPATH_WECHATPAY_APIV3_KEY must be exactly 32 bytes (WeChat Pay)")
        if self.environment == "development":
            return self
        for name in (
            "link_secret",
            "audit_key",
            "his_webhook_secret",
            "his_api_key",
            "enterprise_webhook_secret",
            "exam_api_key",
            "exam_webhook_secret",
            "identity_api_key",
            "insurance_app_secret",
        ):
            secret = getattr(self, name).get_secret_value()
            if secret == DEV_PLACEHOLDER_SECRET or len(secret) < 32:
                raise ValueError(
                    f"CAREPATH_{name.upper()} must be set to a random value of at least 32 "
                    f"characters outside development"
                )
        if keyring.holds_any(_DEV_KEYS):
            raise ValueError(
                "CAREPATH_DATA_KEYS and CAREPATH_BLIND_INDEX_KEY must be set to keys of your own "
                "outside development (the development keys are public)"
            )
        # Issued by the providers, in their own formats: only the placeholder is refused.
        provider_secrets = []
        if "sms" in self.enabled_channels:
            provider_secrets.append("twilio_auth_token")
        if "wechat" in self.enabled_channels:
            provider_secrets += ["wechat_secret", "wechat_token"]
        if self.wechatpay_private_key is None or self.wechatpay_platform_public_key is None:
            raise ValueError(
                "CAREPATH_WECHATPAY_PRIVATE_KEY and CAREPATH_WECHATPAY_PLATFORM_PUBLIC_KEY must "
                "be set outside development"
            )
        if self.wechatpay_apiv3_key.get_secret_value() == DEV_APIV3_KEY:
            raise ValueError("CAREPATH_WECHATPAY_APIV3_KEY must be set outside development")
        for name in provider_secrets:
            if getattr(self, name).get_secret_value() == DEV_PLACEHOLDER_SECRET:
                raise ValueError(f"CAREPATH_{name.upper()} must be set outside development")
        if self.environment == "production" and self.allow_demo_clock:
            raise ValueError("CAREPATH_ALLOW_DEMO_CLOCK must be false in production")
        return self

    @property
    def wechatpay_notify_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/webhooks/wechatpay/notify"

    @property
    def enabled_channels(self) -> list[str]:
        return [c.strip() for c in self.message_channels.split(",") if c.strip()]

    @property
    def twilio_status_callback_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/webhooks/twilio/status"

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.environment != "development"

    @property
    def demo_clock_allowed(self) -> bool:
        if self.allow_demo_clock is not None:
            return self.allow_demo_clock
        return self.environment != "production"

    @property
    def static_tokens_for_people(self) -> bool:
        """Static API tokens of people (every role but integration) are accepted only outside
        production; in production people sign in with a password."""
        return self.environment != "production"

    @property
    def uploads_path(self) -> Path:
        return self.upload_dir if self.upload_dir is not None else self.data_dir / "uploads"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
