"""Development key pairs for the payment provider protocol, generated once under the data
directory: the merchant's (signs our requests) and the simulated platform's (signs the
simulator's answers and notifications). Production keys come from WeChat Pay through
configuration; these are never used outside development and tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.settings import Settings


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str


def generate_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(private.decode(), public.decode())


@dataclass(frozen=True)
class DevPaymentKeys:
    merchant: KeyPair
    platform: KeyPair


def dev_payment_keys(data_dir: Path) -> DevPaymentKeys:
    folder = data_dir / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = {}
    for name in ("merchant", "platform"):
        private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
        if not (private.exists() and public.exists()):
            pair = generate_pair()
            private.write_text(pair.private_pem)
            private.chmod(0o600)
            public.write_text(pair.public_pem)
        pairs[name] = KeyPair(private.read_text(), public.read_text())
    return DevPaymentKeys(merchant=pairs["merchant"], platform=pairs["platform"])


def wechatpay_keys(settings: Settings) -> tuple[str, str]:
    """(merchant private key, platform public key): configured, or in development the
    generated pair the local simulator also uses."""
    private = settings.wechatpay_private_key
    platform = settings.wechatpay_platform_public_key
    if private is not None and platform is not None:
        return private.get_secret_value(), platform
    if settings.environment != "development":
        raise ValueError("WeChat Pay keys are not configured")
    keys = dev_payment_keys(settings.data_dir)
    return keys.merchant.private_pem, keys.platform.public_pem
