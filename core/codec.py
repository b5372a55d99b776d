"""AES-256-GCM payload codec: customer names, phones and addresses never reach Temporal in plain text.

Each payload is serialized whole (metadata too, so even the plaintext's encoding is hidden) and sealed with the key
settings.pii_key_id names; every key in settings.pii_keys decrypts, so a key can be rotated while recorded
histories still name the previous one. The layout follows temporalio/samples-python `encryption/codec.py`
(12-byte random nonce + ciphertext + tag, metadata `encoding: binary/encrypted`, `encryption-key-id`), except that
the key id is authenticated as associated data.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from core.config import Settings

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class PayloadDecryptionError(ValueError):
    """A payload marked encrypted that cannot be opened: unknown key id, or corrupt, tampered or relabelled."""


def _associated_data(key_id: str) -> bytes:
    # Authenticated with the ciphertext: relabelling a payload with another key id fails the tag check, even when
    # both ids map to the same key bytes.
    return b"orderflow-pii/v1;key-id=" + key_id.encode()


def _decode_key(key_id: str, encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"pii_keys[{key_id!r}] is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"pii_keys[{key_id!r}] decodes to {len(key)} bytes; AES-256 needs exactly {KEY_BYTES}")
    return key


class PiiCodec(PayloadCodec):
    """Encrypts every payload with the current key; decrypts with whichever known key a payload names."""

    def __init__(self, keys: Mapping[str, str], key_id: str) -> None:
        """`keys`: key id -> base64 of 32 random bytes; `key_id`: the one that encrypts."""
        super().__init__()
        if not key_id:
            raise ValueError("pii_key_id is empty: name the key in pii_keys that encrypts new payloads")
        if key_id not in keys:
            raise ValueError(f"pii_key_id {key_id!r} is not among pii_keys ({', '.join(sorted(keys)) or 'none'})")
        if any(not name for name in keys):
            raise ValueError("pii_keys has an empty key id")
        self.key_id = key_id
        self._ciphers = {name: AESGCM(_decode_key(name, encoded)) for name, encoded in keys.items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.pii_keys, settings.pii_key_id)

    async def encode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self._seal(payload) for payload in payloads]

    async def decode(self, payloads: Iterable[Payload]) -> list[Payload]:
        # Payloads without our encoding pass through: histories recorded before encryption must still replay.
        return [self._open(p) if p.metadata.get("encoding") == ENCODING else p for p in payloads]

    def _seal(self, payload: Payload) -> Payload:
        # Random 96-bit nonces are safe for ~2**32 payloads per key (NIST SP 800-38D); rotate well before that.
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.key_id].encrypt(nonce, payload.SerializeToString(), _associated_data(self.key_id))
        return Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: self.key_id.encode()}, data=nonce + sealed)

    def _open(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "backslashreplace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            known = ", ".join(sorted(self._ciphers))
            raise PayloadDecryptionError(
                f"payload is encrypted with key id {key_id!r}, which is not in pii_keys (known: {known}); "
                "add that key to pii_keys to read it"
            )
        data = payload.data
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadDecryptionError(f"payload under key id {key_id!r} is too short to be AES-GCM ciphertext")
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _associated_data(key_id))
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload under key id {key_id!r} failed authentication: corrupt, tampered or relabelled"
            ) from None
        try:
            return Payload.FromString(plain)
        except DecodeError:  # authentic, so only a foreign encoder with our key could produce this
            raise PayloadDecryptionError(f"payload under key id {key_id!r} does not hold a Payload") from None


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic data converter with payloads encrypted, failure messages and stack traces included.

    Error messages can quote customer data, so they travel as an encoded attribute through the codec too; the
    history shows "Encoded failure" until a codec server decodes it. Application error types stay in plain text.
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=PiiCodec.from_settings(settings),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
