"""Webhook secrets at rest: AES-256-GCM under a key from the settings.

A webhook's secret must be readable by the server (it signs every delivery with it), so
it cannot be hashed like a token; it is encrypted instead, and a copy of the database
(a backup, a replica, a leaked dump) holds no usable secret without the key.

Stored form: ``v1.<key id>.<nonce>.<ciphertext and tag>`` (base64url, no padding). The
key id is the first 16 hex digits of SHA-256 over a label and the key, so the server
knows which of its keys opens a value, and a value sealed under an unknown key fails
with a message naming the id instead of a bare authentication error. The associated
data binds the value to its purpose (a ciphertext copied into another column does not
open).

Keys: ``MODELGATE_SECRET_KEY`` (32 random bytes, base64url: ``python -c "import
secrets, base64; print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"``)
seals and opens; ``MODELGATE_SECRET_KEYS_PREVIOUS`` (a JSON list) only opens. Rotation:
add the new key as ``MODELGATE_SECRET_KEY`` and the old one to the previous keys,
restart, run ``modelgate db rekey-secrets`` (every secret sealed again under the new key),
then drop the old key (docs/decisions/0021-webhook-secrets-and-pinned-delivery.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
_AAD = b"modelgate/webhooks.secret/v1"


class SecretKeyError(ValueError):
    """A key is malformed or missing, or a value does not open with the keys given."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_key(text: str) -> bytes:
    """A key as configured (base64url or standard base64 of 32 bytes)."""
    try:
        raw = _unb64(text.strip().replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        raise SecretKeyError("the secret key is not base64") from None
    if len(raw) != 32:
        raise SecretKeyError(f"the secret key must be 32 bytes (AES-256), not {len(raw)}")
    return raw


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"modelgate secret key id\x00" + key).hexdigest()[:16]


@dataclass(frozen=True)
class SecretBox:
    """Seals under the current key; opens under the current or any previous key."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    @classmethod
    def from_texts(cls, current: str, previous: Sequence[str] = ()) -> SecretBox:
        return cls(decode_key(current), tuple(decode_key(p) for p in previous))

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def seal(self, secret: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.current).encrypt(nonce, secret.encode(), _AAD)
        return f"{VERSION}.{self.current_id}.{_b64(nonce)}.{_b64(sealed)}"

    def sealed_under_current(self, stored: str) -> bool:
        return stored.split(".", 2)[:2] == [VERSION, self.current_id]

    def open(self, stored: str) -> str:
        parts = stored.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            raise SecretKeyError("the stored secret is not a sealed value")
        keys = {key_id(k): k for k in (self.current, *self.previous)}
        key = keys.get(parts[1])
        if key is None:
            raise SecretKeyError(
                f"the stored secret was sealed under key {parts[1]}, which is neither "
                "MODELGATE_SECRET_KEY nor one of MODELGATE_SECRET_KEYS_PREVIOUS"
            )
        try:
            plain = AESGCM(key).decrypt(_unb64(parts[2]), _unb64(parts[3]), _AAD)
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretKeyError("the stored secret does not open: altered or corrupt") from None
        return plain.decode()
