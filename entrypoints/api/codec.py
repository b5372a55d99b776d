"""Codec server: Temporal's remote codec protocol over PiiCodec, for the Temporal UI and the CLI's --codec-endpoint.

    POST /codec/encode, POST /codec/decode
    body and answer: {"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}, ...]} (proto3 JSON)

Clients point their codec endpoint at {api}/codec and append /encode or /decode. They also send X-Namespace, which is
ignored (one key ring serves every namespace), and Authorization when configured to; browsers need CORS
(add_codec_cors) because the UI is served from another origin. CORSMiddleware covers the whole app it is added to.

A payload that cannot be decrypted (unknown key id, corrupt or tampered ciphertext) fails the whole request with 422
naming it, exactly as the worker's codec would fail, rather than coming back still encrypted as if nothing were wrong.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from temporalio.api.common.v1 import Payload, Payloads

from core.codec import PayloadDecryptionError, PiiCodec
from core.config import Settings
from entrypoints.api.auth import requires
from entrypoints.api.deps import problems
from models.status import Role

# proto3 JSON reads bytes in the standard or URL-safe base64 alphabet, padded or not (never 4n+1 digits).
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2,3})?={0,2}$"
CODEC_CORS_HEADERS = ["content-type", "x-namespace", "authorization"]


def _canonical_base64(value: str) -> str:
    digits = value.rstrip("=")
    raw = base64.urlsafe_b64decode(digits.replace("+", "-").replace("/", "_") + "=" * (-len(digits) % 4))
    return base64.b64encode(raw).decode()


Base64 = Annotated[str, Field(pattern=BASE64_PATTERN), AfterValidator(_canonical_base64)]


class PayloadJson(BaseModel):
    """A temporal.api.common.v1.Payload in proto3 JSON: metadata values and data are base64."""

    # Undeclared fields are refused, not dropped. Payload.externalPayloads is among them: it appears only with the
    # SDK's external storage, which orderflow does not use.
    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Base64] = {}
    data: Base64 = ""


class PayloadsJson(BaseModel):
    """A temporal.api.common.v1.Payloads in proto3 JSON, the body and answer of both codec endpoints."""

    payloads: list[PayloadJson] = []


class ErrorDetail(BaseModel):
    """FastAPI's answer to a body it cannot read as JSON text at all (e.g. not UTF-8)."""

    detail: str


def _invalid(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    # FastAPI's own 422 shape, so every 4xx matches the schema it declares.
    return RequestValidationError([{"type": "value_error", "loc": ("body", "payloads", *loc), "msg": message}])


def _to_proto(body: PayloadsJson) -> list[Payload]:
    payloads = []
    for index, payload in enumerate(body.payloads):
        try:
            payloads.append(json_format.ParseDict(payload.model_dump(), Payload()))
        except json_format.ParseError as exc:
            raise _invalid((index,), f"not a Temporal Payload: {exc}") from None
    return payloads


def _to_json(payloads: list[Payload]) -> PayloadsJson:
    return PayloadsJson.model_validate(json_format.MessageToDict(Payloads(payloads=payloads)))


def codec_router(settings: Settings) -> APIRouter:
    """POST /codec/encode and /codec/decode. Invalid keys in the settings fail here, at startup."""
    codec = PiiCodec.from_settings(settings)
    unreadable = {"model": ErrorDetail, "description": "Body is not JSON text"}
    # Decoding reveals customer data: only ops (and admin) tokens, unless the API is reachable from this
    # machine alone (the embedded stack, whose dev-server UI cannot send a token, turns the check off).
    guarded = settings.codec_requires_token
    router = APIRouter(
        prefix="/codec",
        tags=["codec"],
        responses={400: unreadable, **(problems(401, 403) if guarded else {})},
        dependencies=[Depends(requires(Role.OPS))] if guarded else [],
    )

    @router.post("/encode", summary="Encrypt payloads (Temporal codec server protocol)")
    async def encode(body: PayloadsJson) -> PayloadsJson:
        return _to_json(await codec.encode(_to_proto(body)))

    @router.post("/decode", summary="Decrypt payloads (Temporal codec server protocol); others pass through")
    async def decode(body: PayloadsJson) -> PayloadsJson:
        decoded: list[Payload] = []
        for index, payload in enumerate(_to_proto(body)):
            try:
                decoded.extend(await codec.decode([payload]))
            except PayloadDecryptionError as exc:
                raise _invalid((index,), str(exc)) from None
        return _to_json(decoded)

    return router


def codec_cors(settings: Settings) -> dict[str, Any]:
    """CORSMiddleware options letting the Temporal UI's origins (settings.codec_cors_origins) call the codec."""
    return {
        "allow_origins": list(settings.codec_cors_origins),
        "allow_methods": ["POST", "OPTIONS"],
        "allow_headers": CODEC_CORS_HEADERS,
        "allow_credentials": False,  # tokens travel in Authorization; no cookies to share
        "max_age": 600,
    }


def add_codec_cors(app: FastAPI, settings: Settings) -> None:
    """Add CORS for the codec's browser clients; nothing when no origin is configured."""
    if settings.codec_cors_origins:
        app.add_middleware(CORSMiddleware, **codec_cors(settings))
