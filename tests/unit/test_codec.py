"""The PII payload codec and its codec-server endpoints, without a Temporal server."""

from __future__ import annotations

import base64
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from core.codec import KEY_ID_METADATA, PayloadDecryptionError, PiiCodec, data_converter
from core.config import Settings
from entrypoints.api.codec import add_codec_cors, codec_router

PHONE = "13800000000"
ADDRESS = "北京市朝阳区建国路88号3单元1201室"
UI_ORIGIN = "http://localhost:8233"


class Consignee(BaseModel):
    name: str
    phone: str
    address: str
    amount: Decimal


CONSIGNEE = Consignee(name="张伟", phone=PHONE, address=ADDRESS, amount=Decimal("12.30"))


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


K1, K2 = new_key(), new_key()


def make_settings(tmp_path: Path, keys: dict[str, str], key_id: str, **extra: Any) -> Settings:
    return Settings.model_validate({"state_dir": tmp_path, "pii_keys": keys, "pii_key_id": key_id, **extra})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_pydantic_payloads_round_trip(tmp_path: Path) -> None:
    converter = data_converter(make_settings(tmp_path, {"k1": K1}, "k1"))

    payloads = await converter.encode([CONSIGNEE])

    assert await converter.decode(payloads, [Consignee]) == [CONSIGNEE]


async def test_ciphertext_holds_no_plaintext(tmp_path: Path) -> None:
    converter = data_converter(make_settings(tmp_path, {"k1": K1}, "k1"))

    [payload] = await converter.encode([CONSIGNEE])

    wire = payload.SerializeToString()
    assert PHONE.encode() not in wire
    assert ADDRESS.encode() not in wire
    assert b"json/plain" not in wire  # the inner metadata is encrypted too
    assert dict(payload.metadata) == {"encoding": b"binary/encrypted", KEY_ID_METADATA: b"k1"}


async def test_unknown_key_id_is_named() -> None:
    [sealed] = await PiiCodec({"k1": K1}, "k1").encode([Payload(data=PHONE.encode())])

    with pytest.raises(PayloadDecryptionError, match="key id 'k1', which is not in pii_keys"):
        await PiiCodec({"k2": K2}, "k2").decode([sealed])


async def test_unencrypted_payloads_pass_through(tmp_path: Path) -> None:
    plain = await pydantic_data_converter.encode([CONSIGNEE])

    assert await PiiCodec({"k1": K1}, "k1").decode(plain) == plain
    assert await data_converter(make_settings(tmp_path, {"k1": K1}, "k1")).decode(plain, [Consignee]) == [CONSIGNEE]


async def test_key_rotation_keeps_old_payloads_readable(tmp_path: Path) -> None:
    before = data_converter(make_settings(tmp_path, {"k1": K1}, "k1"))
    after = data_converter(make_settings(tmp_path, {"k1": K1, "k2": K2}, "k2"))

    old = await before.encode([CONSIGNEE])
    new = await after.encode([CONSIGNEE])

    assert await after.decode(old, [Consignee]) == [CONSIGNEE]
    assert await after.decode(new, [Consignee]) == [CONSIGNEE]
    assert new[0].metadata[KEY_ID_METADATA] == b"k2"


async def test_tampered_ciphertext_is_refused() -> None:
    codec = PiiCodec({"k1": K1}, "k1")
    [sealed] = await codec.encode([Payload(data=PHONE.encode())])
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 1
    sealed.data = bytes(flipped)

    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await codec.decode([sealed])


async def test_truncated_ciphertext_is_refused() -> None:
    codec = PiiCodec({"k1": K1}, "k1")
    [sealed] = await codec.encode([Payload(data=PHONE.encode())])
    sealed.data = sealed.data[:5]

    with pytest.raises(PayloadDecryptionError, match="too short"):
        await codec.decode([sealed])


@pytest.mark.parametrize("other_key", [K2, K1], ids=["different-key", "same-key-bytes"])
async def test_relabelled_key_id_is_refused(other_key: str) -> None:
    # With the same key bytes under both ids only the associated data tells the labels apart.
    codec = PiiCodec({"k1": K1, "k2": other_key}, "k1")
    [sealed] = await codec.encode([Payload(data=PHONE.encode())])
    sealed.metadata[KEY_ID_METADATA] = b"k2"

    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await codec.decode([sealed])


@pytest.mark.parametrize(
    ("keys", "key_id", "message"),
    [
        ({"k1": "not base64!"}, "k1", r"pii_keys\['k1'\] is not valid base64"),
        ({"k1": b64(os.urandom(16))}, "k1", "decodes to 16 bytes"),
        ({"k1": K1}, "k2", "pii_key_id 'k2' is not among pii_keys"),
        ({"k1": K1}, "", "pii_key_id is empty"),
        ({"k1": K1, "": K2}, "k1", "empty key id"),
    ],
)
def test_bad_keys_are_refused_at_construction(keys: dict[str, str], key_id: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PiiCodec(keys, key_id)


async def test_failure_messages_are_encrypted(tmp_path: Path) -> None:
    converter = data_converter(make_settings(tmp_path, {"k1": K1}, "k1"))
    failure = Failure()

    await converter.encode_failure(ApplicationError(f"no courier reaches {ADDRESS}", type="Undeliverable"), failure)

    assert ADDRESS.encode() not in failure.SerializeToString()
    assert failure.application_failure_info.type == "Undeliverable"  # business outcome stays readable
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError) and ADDRESS in decoded.message


# The codec server, in the JSON shape the Temporal UI sends.


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = make_settings(
        tmp_path, {"k1": K1}, "k1", codec_cors_origins=[UI_ORIGIN, "http://127.0.0.1:8233"], codec_requires_token=False
    )
    app = FastAPI()
    app.include_router(codec_router(settings))
    add_codec_cors(app, settings)
    return TestClient(app)


UI_HEADERS = {"X-Namespace": "default", "Authorization": "Bearer ui-token", "Origin": UI_ORIGIN}
UI_PAYLOADS = {
    "payloads": [
        {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(f'{{"phone":"{PHONE}"}}'.encode())},
        {"metadata": {"encoding": b64(b"binary/null")}},
    ]
}


def test_the_codec_takes_only_tokens_unless_told_otherwise(tmp_path: Path) -> None:
    app = FastAPI()
    app.include_router(codec_router(make_settings(tmp_path, {"k1": K1}, "k1")))  # the default: tokens required
    answer = TestClient(app).post("/codec/decode", json=UI_PAYLOADS, headers={"X-Namespace": "default"})
    assert answer.status_code == 401 and PHONE not in answer.text


def test_codec_server_round_trip(client: TestClient) -> None:
    encoded = client.post("/codec/encode", json=UI_PAYLOADS, headers=UI_HEADERS)
    assert encoded.status_code == 200, encoded.text
    assert encoded.headers["access-control-allow-origin"] == UI_ORIGIN
    assert PHONE not in encoded.text
    assert [p["metadata"]["encoding"] for p in encoded.json()["payloads"]] == [b64(b"binary/encrypted")] * 2

    decoded = client.post("/codec/decode", json=encoded.json(), headers=UI_HEADERS)

    assert decoded.status_code == 200, decoded.text
    assert decoded.json() == {
        "payloads": [
            UI_PAYLOADS["payloads"][0],
            {"metadata": {"encoding": b64(b"binary/null")}, "data": ""},
        ]
    }


def test_codec_server_passes_unencrypted_payloads_through(client: TestClient) -> None:
    answer = client.post("/codec/decode", json=UI_PAYLOADS)

    assert answer.status_code == 200
    assert answer.json()["payloads"][0] == UI_PAYLOADS["payloads"][0]


def test_codec_server_answers_an_empty_body_in_kind(client: TestClient) -> None:
    assert client.post("/codec/decode", json={}).json() == {"payloads": []}


@pytest.mark.parametrize(
    ("metadata", "data", "message"),
    [
        ({KEY_ID_METADATA: b64(b"k9")}, b64(os.urandom(40)), "key id 'k9'"),
        ({KEY_ID_METADATA: b64(b"k1")}, b64(os.urandom(40)), "failed authentication"),
    ],
    ids=["unknown-key", "corrupt"],
)
def test_codec_server_refuses_undecryptable_payloads(
    client: TestClient, metadata: dict[str, str], data: str, message: str
) -> None:
    body = {
        "payloads": [
            UI_PAYLOADS["payloads"][0],
            {"metadata": {"encoding": b64(b"binary/encrypted"), **metadata}, "data": data},
        ]
    }

    answer = client.post("/codec/decode", json=body)

    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "payloads", 1] and message in error["msg"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe\x81",  # not UTF-8: FastAPI answers 400 before validation
        b"[]",
        b'{"payloads": "x"}',
        b'{"payloads": [{"data": "not base64!"}]}',
        b'{"payloads": [{"data": "QUJDR"}]}',
        b'{"payloads": [{"metadata": {"encoding": 5}}]}',
        b'{"payloads": [{"unknownField": 1}]}',
    ],
)
@pytest.mark.parametrize("route", ["/codec/encode", "/codec/decode"])
def test_codec_server_refuses_malformed_bodies(client: TestClient, route: str, body: bytes) -> None:
    answer = client.post(route, content=body, headers={"Content-Type": "application/json"})

    assert 400 <= answer.status_code < 500
    assert answer.json()["detail"]


def preflight(client: TestClient, origin: str) -> dict[str, str]:
    answer = client.options(
        "/codec/decode",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
        },
    )
    return dict(answer.headers) | {"status": str(answer.status_code)}


def test_cors_preflight_from_the_ui_succeeds(client: TestClient) -> None:
    headers = preflight(client, UI_ORIGIN)

    assert headers["status"] == "200"
    assert headers["access-control-allow-origin"] == UI_ORIGIN
    assert "POST" in headers["access-control-allow-methods"]
    assert {"content-type", "x-namespace", "authorization"} <= set(headers["access-control-allow-headers"].split(", "))


def test_cors_preflight_from_elsewhere_gets_no_grant(client: TestClient) -> None:
    headers = preflight(client, "https://evil.example")

    assert "access-control-allow-origin" not in headers
