"""The SM primitives against their standards' published examples, and the envelopes built on
them (SEC-4): round trip, and refusal of anything altered, relabelled or moved."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import core.crypto as crypto
from core.crypto import (
    CryptoError,
    EncryptedText,
    Keyring,
    KeyringNotConfigured,
    configure_keyring,
    envelope_key_id,
    hmac_sm3,
    parse_key,
    sm4_gcm_decrypt,
    sm4_gcm_encrypt,
)

KEY_A = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
KEY_B = bytes.fromhex("f0e0d0c0b0a090807060504030201000")
BLIND = bytes.fromhex("0f0e0d0c0b0a09080706050403020100")


def _sm3(data: bytes) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


def test_sm4_block_matches_gb_t_32907_2016_example_1() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (encryptor.update(key) + encryptor.finalize()).hex() == (
        "681edf34d206965e86b3e94f536e4246"
    )


def test_sm3_matches_gb_t_32905_2016_examples() -> None:
    assert _sm3(b"abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert _sm3(b"abcd" * 16) == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )


# RFC 8998, appendix A.1 (SM4-GCM).
RFC8998_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
RFC8998_IV = bytes.fromhex("00001234567800000000abcd")
RFC8998_AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
RFC8998_PT = bytes.fromhex(
    "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd"
    "eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa"
)
RFC8998_CT = bytes.fromhex(
    "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
    "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"
)
RFC8998_TAG = bytes.fromhex("83de3541e4c2b58177e065a9bf7b62ec")


def test_sm4_gcm_matches_rfc_8998() -> None:
    ciphertext, tag = sm4_gcm_encrypt(RFC8998_KEY, RFC8998_IV, RFC8998_PT, RFC8998_AAD)
    assert (ciphertext, tag) == (RFC8998_CT, RFC8998_TAG)
    assert (
        sm4_gcm_decrypt(RFC8998_KEY, RFC8998_IV, RFC8998_CT, RFC8998_TAG, RFC8998_AAD) == RFC8998_PT
    )


def test_hmac_sm3_is_keyed() -> None:
    assert hmac_sm3(BLIND, b"x") != hmac_sm3(KEY_A, b"x")
    assert len(hmac_sm3(BLIND, b"x")) == 32


def _ring(current: str = "a", **extra: bytes) -> Keyring:
    return Keyring({"a": KEY_A, **extra}, current, BLIND)


def test_envelope_round_trip_carries_the_key_id() -> None:
    ring = _ring()
    sealed = ring.encrypt("张建国", "patient.name")
    assert sealed.startswith("v1:a:")
    assert "张建国" not in sealed
    assert envelope_key_id(sealed) == "a"
    assert ring.decrypt(sealed, "patient.name") == "张建国"
    # A fresh nonce each time: equal values do not give equal envelopes.
    assert ring.encrypt("张建国", "patient.name") != sealed
    assert ring.decrypt(ring.encrypt("", "patient.phone"), "patient.phone") == ""


def _flip(sealed: str, at: int) -> str:
    prefix, body = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[at] ^= 0x01
    return f"{prefix}:{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"


@pytest.mark.parametrize(
    ("where", "at"), [("nonce", 0), ("ciphertext", 12), ("tag", -1)], ids=lambda x: str(x)
)
def test_a_tampered_envelope_is_refused(where: str, at: int) -> None:
    ring = _ring()
    sealed = ring.encrypt("13800138001", "patient.phone")
    with pytest.raises(CryptoError, match="failed authentication"):
        ring.decrypt(_flip(sealed, at), "patient.phone")


def test_a_value_moved_to_another_column_is_refused() -> None:
    ring = _ring()
    sealed = ring.encrypt("13800138001", "patient.phone")
    # Even once read (and kept) under its own column.
    assert ring.decrypt(sealed, "patient.phone") == "13800138001"
    with pytest.raises(CryptoError, match=r"patient\.name"):
        ring.decrypt(sealed, "patient.name")


def test_a_relabelled_key_id_is_refused_even_if_both_keys_are_known() -> None:
    ring = _ring(b=KEY_B)
    sealed = ring.encrypt("张建国", "patient.name")
    with pytest.raises(CryptoError, match="failed authentication"):
        ring.decrypt(sealed.replace("v1:a:", "v1:b:"), "patient.name")


def test_an_unknown_key_id_is_refused() -> None:
    sealed = _ring(b=KEY_B, current="b").encrypt("张建国", "patient.name")
    with pytest.raises(CryptoError, match="unknown key id 'b'"):
        _ring().decrypt(sealed, "patient.name")


@pytest.mark.parametrize("bad", ["张建国", "v2:a:AAAA", "v1:a:***", "v1:a:AAAA"])
def test_plain_or_malformed_values_are_refused(bad: str) -> None:
    with pytest.raises(CryptoError):
        _ring().decrypt(bad, "patient.name")


def test_rotation_keeps_old_keys_for_reading_and_seals_with_the_current_one() -> None:
    old = _ring().encrypt("张建国", "patient.name")
    rotated = _ring(b=KEY_B, current="b")
    assert rotated.decrypt(old, "patient.name") == "张建国"
    again = rotated.reencrypt(old, "patient.name")
    assert envelope_key_id(again) == "b"
    assert rotated.reencrypt(again, "patient.name") == again
    assert Keyring({"b": KEY_B}, "b", BLIND).decrypt(again, "patient.name") == "张建国"


def test_blind_index_normalises_and_uses_its_own_key() -> None:
    ring = _ring()
    phone = ring.blind_index("phone", "13800138001")
    assert phone is not None
    assert len(phone) == 64
    for spelling in ("+86 138-0013-8001", "008613800138001", "+8613800138001"):
        assert ring.blind_index("phone", spelling) == phone
    assert ring.blind_index("phone", "13900139002") != phone
    assert ring.blind_index("id_number", "51340119880516051x") == ring.blind_index(
        "id_number", "51340119880516051X"
    )
    assert ring.blind_index("phone", "") is None
    assert ring.blind_index("phone", None) is None
    # Another blind index key gives other digests: the data keys never index.
    assert Keyring({"a": KEY_A}, "a", KEY_B).blind_index("phone", "13800138001") != phone


@pytest.mark.parametrize(
    ("keys", "current", "blind", "message"),
    [
        ({"a": KEY_A}, "b", BLIND, "current data key id 'b'"),
        ({"a": KEY_A[:8]}, "a", BLIND, "must be 16 bytes"),
        ({"a:1": KEY_A}, "a:1", BLIND, "key id"),
        ({"a": KEY_A}, "a", KEY_A, "differ from every data key"),
    ],
)
def test_a_bad_keyring_is_refused(
    keys: dict[str, bytes], current: str, blind: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Keyring(keys, current, blind)


def test_keys_are_read_as_hex_or_base64() -> None:
    assert parse_key(KEY_A.hex(), "k") == KEY_A
    assert parse_key(base64.b64encode(KEY_A).decode(), "k") == KEY_A
    with pytest.raises(ValueError, match="16 bytes"):
        parse_key("not a key", "k")


def test_encrypted_columns_refuse_to_work_without_a_keyring() -> None:
    saved = crypto._keyring
    configure_keyring(None)
    try:
        column = EncryptedText("patient.name")
        with pytest.raises(KeyringNotConfigured):
            column.process_bind_param("张建国", None)  # type: ignore[arg-type]
    finally:
        configure_keyring(saved)
