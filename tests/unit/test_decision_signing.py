"""Decision signatures: what they bind, and that nothing else verifies."""

from __future__ import annotations

import pytest

from domain.decision_signing import sign_decision, signature_problem

FIELDS = {
    "workflow_id": "order-SO-1",
    "level": 1,
    "decision": "approve",
    "by": "fiona",
    "role": "finance",
    "comment": "ok",
}


def test_a_signed_decision_verifies() -> None:
    signature = sign_decision("s3cret", **FIELDS)  # type: ignore[arg-type]
    assert signature_problem("s3cret", signature, **FIELDS) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changed",
    [
        {"workflow_id": "order-SO-2"},
        {"level": 2},
        {"decision": "reject"},
        {"by": "felix"},
        {"role": "finance_director"},
        {"comment": "ok, and more"},
    ],
)
def test_every_signed_field_is_bound(changed: dict[str, object]) -> None:
    signature = sign_decision("s3cret", **FIELDS)  # type: ignore[arg-type]
    why = signature_problem("s3cret", signature, **{**FIELDS, **changed})  # type: ignore[arg-type]
    assert why is not None and "invalid decision signature" in why


def test_missing_signature_other_secret_and_no_secret_are_refused() -> None:
    assert "unsigned" in (signature_problem("s3cret", "", **FIELDS) or "")  # type: ignore[arg-type]
    other = sign_decision("other", **FIELDS)  # type: ignore[arg-type]
    assert "invalid" in (signature_problem("s3cret", other, **FIELDS) or "")  # type: ignore[arg-type]
    assert "no decision secret" in (signature_problem("", other, **FIELDS) or "")  # type: ignore[arg-type]


def test_a_non_ascii_signature_is_refused_not_raised() -> None:
    why = signature_problem("s3cret", "é" * 64 + "\ud800", **FIELDS)  # type: ignore[arg-type]
    assert why is not None and "invalid" in why


def test_a_substitutes_decision_binds_whom_it_is_for_and_older_signatures_still_verify() -> None:
    plain = sign_decision("s3cret", **FIELDS)  # type: ignore[arg-type]
    assert sign_decision("s3cret", **FIELDS, on_behalf_of="") == plain  # type: ignore[arg-type]
    for_derek = sign_decision("s3cret", **FIELDS, on_behalf_of="derek")  # type: ignore[arg-type]
    assert signature_problem("s3cret", for_derek, **FIELDS, on_behalf_of="derek") is None  # type: ignore[arg-type]
    for other in ("", "fiona"):  # dropped, or moved to another absent approver
        why = signature_problem("s3cret", for_derek, **FIELDS, on_behalf_of=other)  # type: ignore[arg-type]
        assert why is not None and "invalid" in why
    assert signature_problem("s3cret", plain, **FIELDS, on_behalf_of="derek") is not None  # type: ignore[arg-type]
