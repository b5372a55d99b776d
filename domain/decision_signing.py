"""Approvers' decisions are signed by the API (and the CLI) with a server secret and verified by the worker
before the order workflow's validator looks at them: a decision sent straight to Temporal, around the API's
token and role checks, carries no valid signature and is refused. Pure functions over plain data."""

from __future__ import annotations

import hashlib
import hmac
import json


def decision_message(
    *, workflow_id: str, level: int, decision: str, by: str, role: str, comment: str, on_behalf_of: str = ""
) -> bytes:
    """The signed content: everything the workflow acts on, bound to one order and one approval level, so a
    captured signature can neither be moved to another order or level nor have its comment edited. A substitute's
    decision also binds whom it is taken for (absent otherwise, so signatures made before substitutes verify)."""
    fields = {"workflow_id": workflow_id, "level": level, "decision": decision, "by": by, "role": role}
    if on_behalf_of:
        fields["on_behalf_of"] = on_behalf_of
    return json.dumps({**fields, "comment": comment}, sort_keys=True, ensure_ascii=False).encode()


def sign_decision(
    secret: str,
    *,
    workflow_id: str,
    level: int,
    decision: str,
    by: str,
    role: str,
    comment: str,
    on_behalf_of: str = "",
) -> str:
    message = decision_message(
        workflow_id=workflow_id,
        level=level,
        decision=decision,
        by=by,
        role=role,
        comment=comment,
        on_behalf_of=on_behalf_of,
    )
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_problem(
    secret: str,
    signature: str,
    *,
    workflow_id: str,
    level: int,
    decision: str,
    by: str,
    role: str,
    comment: str,
    on_behalf_of: str = "",
) -> str | None:
    """Why the signature does not vouch for this decision, or None when it does."""
    if not secret:
        return "decisions cannot be verified: the worker has no decision secret configured"
    if not signature:
        return "unsigned decision: decisions are accepted only through the orderflow API or CLI"
    expected = sign_decision(
        secret,
        workflow_id=workflow_id,
        level=level,
        decision=decision,
        by=by,
        role=role,
        comment=comment,
        on_behalf_of=on_behalf_of,
    )
    # Bytes, not str: compare_digest refuses non-ASCII str, and a forged signature may be anything.
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogatepass")):
        return "invalid decision signature: decisions are accepted only through the orderflow API or CLI"
    return None
