"""Out of office, on both databases: an approver names a substitute for whole days in the business's time zone
(checked field by field, one at a time, withdrawable); while it stands the substitute decides the approver's
levels with the approver's role, through the real workflow, audited "on behalf of"; outside it the decision is
refused and audited; the four-eyes rule holds for the absent approver too."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from core.config import Settings
from core.db import read_only, unit_of_work
from models.status import OrderStatus, Role
from models.tables import ApprovalRecord
from services.accounts import set_disabled
from services.substitutes import acting_role, name_substitute, standing_for, substitutions_of, withdraw
from services.users import InvalidFields, add_user
from tests.integration.test_api_orders import bearer, body
from tests.support.waiting import wait_for_status, wait_until_parked
from worker import running_worker
from workflows.contract import order_workflow_id

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 10:00 in Shanghai on 2026-12-02 (02:00 UTC): the business's day, not UTC's, decides what "today" is.
NOW = datetime(2026, 12, 2, 2, tzinfo=UTC)
TODAY = date(2026, 12, 2)


def people(engine: Engine, *roles: Role) -> list[str]:
    names = [f"{role.value}-{uuid.uuid4().hex[:6]}" for role in roles]
    with unit_of_work(engine) as session:
        for name, role in zip(names, roles, strict=True):
            add_user(session, name, role)
    return names


def name(engine: Engine, principal: str, substitute: str, first: date, last: date, now: datetime = NOW) -> int:
    with unit_of_work(engine) as session:
        row = name_substitute(
            session,
            principal=principal,
            substitute=substitute,
            first_day=first,
            last_day=last,
            by=principal,
            now=now,
            zone=SHANGHAI,
            max_days=92,
        )
        return row.id or 0


def test_a_substitution_is_checked_field_by_field_and_stands_for_whole_business_days(engine: Engine) -> None:
    fiona, olga, alice = people(engine, Role.FINANCE, Role.OPS, Role.SALES)
    (root,) = people(engine, Role.ADMIN)
    refused = {
        (fiona, "nobody-here", TODAY, TODAY): {"substitute": "no active user nobody-here"},
        (fiona, fiona, TODAY, TODAY): {"substitute": "name someone else"},
        (fiona, olga, TODAY, TODAY - timedelta(days=1)): {"last_day": "the last day comes before the first"},
        (fiona, olga, TODAY - timedelta(days=5), TODAY - timedelta(days=1)): {"last_day": "that span is over already"},
        (fiona, olga, TODAY, TODAY + timedelta(days=92)): {"last_day": "at most 92 days at a time"},
        (root, olga, TODAY, TODAY): {
            "principal": f"{root} (admin) decides no approvals: there is nothing to hand over"
        },
    }
    for (principal, substitute, first, last), errors in refused.items():
        with pytest.raises(InvalidFields) as bad:
            name(engine, principal, substitute, first, last)
        assert bad.value.errors == errors

    substitution = name(engine, fiona, olga, TODAY, TODAY + timedelta(days=2))  # 2 Dec to 4 Dec, Shanghai days
    with pytest.raises(InvalidFields) as overlap:
        name(engine, fiona, alice, TODAY + timedelta(days=2), TODAY + timedelta(days=5))
    assert "already stands in" in overlap.value.errors["first_day"]
    name(engine, fiona, alice, TODAY + timedelta(days=3), TODAY + timedelta(days=5))  # after it: fine

    start = datetime(2026, 12, 1, 16, tzinfo=UTC)  # 2 Dec 00:00 in Shanghai
    end = datetime(2026, 12, 4, 16, tzinfo=UTC)  # 5 Dec 00:00 in Shanghai
    with read_only(engine) as session:
        for at, expected in (
            (start - timedelta(seconds=1), []),
            (start, [fiona]),
            (end - timedelta(seconds=1), [fiona]),
            (end, []),
        ):
            assert [s.principal for s in standing_for(session, olga, at, SHANGHAI)] == expected, at
        [shown, later] = substitutions_of(session, fiona, NOW, SHANGHAI)
    assert (shown.substitute, shown.first_day, shown.last_day, shown.standing) == (olga, TODAY, date(2026, 12, 4), True)
    assert (later.substitute, later.standing) == (alice, False)
    assert acting_role(engine, olga, fiona, NOW) == "finance"
    assert acting_role(engine, alice, fiona, NOW) is None  # not yet

    with unit_of_work(engine) as session:
        set_disabled(session, fiona, True)
    assert acting_role(engine, olga, fiona, NOW) is None  # a disabled approver's work is nobody's
    with unit_of_work(engine) as session:
        set_disabled(session, fiona, False)

    with unit_of_work(engine) as session:
        withdraw(session, substitution, principal=fiona, now=NOW)
    assert acting_role(engine, olga, fiona, NOW) is None
    with unit_of_work(engine) as session, pytest.raises(Exception, match="no such substitution"):
        withdraw(session, substitution, principal=fiona, now=NOW)  # once


def approvals_of(engine: Engine, number: str) -> list[ApprovalRecord]:
    with Session(engine) as session:
        query = select(ApprovalRecord).where(ApprovalRecord.order_no == number).order_by(col(ApprovalRecord.id))
        return list(session.exec(query).all())


async def test_a_substitute_decides_with_the_absent_approvers_role_audited_on_their_behalf(
    api: httpx.AsyncClient, engine: Engine, client: Client, settings: Settings, task_queue: str
) -> None:
    derek, olga = f"derek-{uuid.uuid4().hex[:6]}", f"olga-{uuid.uuid4().hex[:6]}"
    as_derek, as_olga = bearer(engine, Role.FINANCE_DIRECTOR, derek), bearer(engine, Role.OPS, olga)
    number = f"T-SUB-{uuid.uuid4().hex[:8]}"
    lines = [("SKU-1018", 5, "12999.00")]  # 64,995: finance, then finance director
    async with running_worker(client, engine, settings, task_queue):
        sent = await api.post("/orders", json=body(number, lines), headers=bearer(engine, Role.OPS))
        assert sent.status_code == 202, sent.text
        handle = client.get_workflow_handle(order_workflow_id(number))
        await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)
        path = f"/orders/{number}/decision"
        for_derek = {"decision": "approve", "comment": "for derek", "on_behalf_of": derek}

        refused = await api.post(path, json=for_derek, headers=as_olga)  # no substitution yet
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"] == f"{olga} does not stand in for {derek} now"

        today = datetime.now(UTC).date()
        name(engine, derek, olga, today, today + timedelta(days=1), now=datetime.now(UTC))
        taken = await api.post(path, json=for_derek, headers=as_olga)  # level 1 (finance): a director may
        assert taken.status_code == 200, taken.text
        state = await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)
        assert state.pending_approval is not None and state.pending_approval.level == 2

        # Four eyes: derek decided level 1 through his substitute, so level 2 needs someone else.
        own = await api.post(path, json={"decision": "approve", "comment": "me too"}, headers=as_derek)
        assert own.status_code == 403 and "four-eyes" in own.json()["detail"], own.text
        view = (await api.get(f"/orders/{number}", headers=as_derek)).json()
        await wait_until_parked(handle)
        await handle.cancel()

    [first] = [a for a in view["approvals"] if "refused" not in a]
    assert (first["by"], first["role"], first["on_behalf_of"]) == (olga, "finance", derek)
    audited = approvals_of(engine, number)
    assert [(a.by, a.on_behalf_of, a.accepted) for a in audited] == [
        (olga, derek, False),  # refused: no substitution stood
        (olga, derek, True),
        (derek, None, False),  # refused: four eyes
    ]
    assert "does not stand in" in audited[0].refusal_reason
