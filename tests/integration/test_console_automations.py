"""The automations pages: ops and admins list, write (form or YAML), dry run and enable rules; a bad rule is
refused naming its field and changes nothing; other roles get 404; the run log shows each step and refuses to
retry a run that did not fail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from core.config import Settings
from core.db import read_only, unit_of_work
from entrypoints.api.app import create_app
from models.status import Role
from models.tables import AutomationRun, AutomationStep
from services.automation import store
from tests.integration.test_console_access import csrf_of, make_user, sign_in
from tests.support.read_model import add_order

DEFAULTS = Path(__file__).parents[2] / "rules" / "default_automations.yaml"
TAOBAO_RULE = {
    "name": "taobao-dispatched-mail-ops",
    "description": "Taobao parcels on their way: ops hear of it by mail",
    "owner": "ops",
    "trigger_type": "status_changed",
    "trigger_to": "DISPATCHED",
    "condition": 'channel == "taobao"',
    "a0_type": "notify",
    "a0_to": "role:ops",
    "a0_subject": "{order_no} dispatched",
    "a0_text": "{订单号} for {customer_name} left with tracking number {tracking_no}.",
    "a0_channels": "email",
}


@pytest.fixture
async def web(engine: Engine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as http:
        yield http


async def test_ops_write_a_rule_in_the_form_dry_run_it_and_enable_it(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "otto", Role.OPS)
    store.load_file(engine, DEFAULTS, by="test", now=datetime.now(UTC))
    add_order(engine, "SO-FORM-1", rep="alice", sku="SKU-1016")
    await sign_in(web, "otto")

    listing = await web.get("/console/automations")
    assert listing.status_code == 200
    assert 'id="rule-new-order-tell-sales-rep"' in listing.text and "stock_crossed: below 50" in listing.text
    new = await web.get("/console/automations/new")
    assert new.status_code == 200 and 'name="a0_type"' in new.text
    saved = await web.post("/console/automations/new", data={**TAOBAO_RULE, "csrf": csrf_of(new)})
    assert saved.status_code == 303
    assert saved.headers["location"] == "/console/automations/rules/taobao-dispatched-mail-ops?saved=true"
    with read_only(engine) as session:
        [stored] = [s for s in store.current(session) if s.rule.name == "taobao-dispatched-mail-ops"]
    assert (stored.version, stored.rule.enabled, stored.saved_by) == (1, False, "otto")  # saved disabled
    assert stored.rule.definition()["trigger"] == {"type": "status_changed", "to": "DISPATCHED"}
    assert stored.rule.definition()["branches"][0]["then"][0]["channels"] == ["email"]

    page = await web.get(saved.headers["location"])
    assert page.status_code == 200 and 'value="{order_no} dispatched"' in page.text  # the form shows the rule back
    tried = await web.post(
        "/console/automations/rules/taobao-dispatched-mail-ops/dry-run",
        data={"csrf": csrf_of(page), "subject": "SO-FORM-1"},
    )
    assert tried.status_code == 200 and 'id="dry-run-result"' in tried.text
    assert "No branch holds" in tried.text  # the order came from the web shop, not taobao

    enabled = await web.post(
        "/console/automations/rules/taobao-dispatched-mail-ops/enabled", data={"csrf": csrf_of(page), "enabled": "true"}
    )
    assert enabled.status_code == 303
    with read_only(engine) as session:
        [latest, first] = store.history(session, "taobao-dispatched-mail-ops")
    assert (latest.version, latest.rule.enabled, latest.note, first.rule.enabled) == (2, True, "enabled", False)
    assert "v2 · enabled" in (await web.get("/console/automations/rules/taobao-dispatched-mail-ops")).text


async def test_the_dry_run_renders_the_actions_a_matching_order_would_get(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, "otto", Role.OPS)
    add_order(engine, "SO-FORM-2", rep="alice", sku="SKU-1016")
    await sign_in(web, "otto")
    new = await web.get("/console/automations/new")
    rule = {**TAOBAO_RULE, "condition": 'channel == "web"', "enabled": "on"}
    assert (await web.post("/console/automations/new", data={**rule, "csrf": csrf_of(new)})).status_code == 303
    tried = await web.post(
        "/console/automations/rules/taobao-dispatched-mail-ops/dry-run",
        data={"csrf": csrf_of(new), "subject": "SO-FORM-2"},
    )
    assert "Branch 1 holds" in tried.text
    assert "SO-FORM-2 dispatched" in tried.text  # the subject rendered
    assert "SO-FORM-2 for " in tried.text  # {订单号} is the order number too
    unknown = await web.post(
        "/console/automations/rules/taobao-dispatched-mail-ops/dry-run", data={"csrf": csrf_of(new), "subject": "SO-X"}
    )
    assert unknown.status_code == 422 and "order SO-X is not in the database" in unknown.text
    with read_only(engine) as session:
        assert session.exec(select(AutomationRun)).first() is None  # a dry run starts nothing


async def test_a_bad_rule_is_refused_naming_its_field_and_the_good_version_stays(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, "otto", Role.OPS)
    await sign_in(web, "otto")
    new = await web.get("/console/automations/new")
    csrf = csrf_of(new)
    typo = await web.post("/console/automations/new", data={**TAOBAO_RULE, "condition": "chanel == 'x'", "csrf": csrf})
    assert typo.status_code == 422
    assert "branches.0.if" in typo.text and "unknown name" in typo.text and "chanel" in typo.text
    assert 'value="{order_no} dispatched"' in typo.text  # what was typed is kept
    bad_variable = {**TAOBAO_RULE, "a0_text": "for {customer}", "csrf": csrf}
    refused = await web.post("/console/automations/new", data=bad_variable)
    assert refused.status_code == 422 and "unknown variable {customer}" in refused.text
    with read_only(engine) as session:
        assert store.current(session) == []

    assert (await web.post("/console/automations/new", data={**TAOBAO_RULE, "csrf": csrf})).status_code == 303
    again = await web.post("/console/automations/new", data={**TAOBAO_RULE, "csrf": csrf})
    assert again.status_code == 422 and "exists: open it to change it" in again.text  # a new rule never overwrites
    broken = await web.post(
        "/console/automations/rules/taobao-dispatched-mail-ops",
        data={**TAOBAO_RULE, "trigger_to": "SHIPPED_SOMEWHERE", "csrf": csrf},
    )
    assert broken.status_code == 422 and "trigger" in broken.text
    yaml_typo = await web.post(
        "/console/automations/rules/taobao-dispatched-mail-ops", data={"yaml": "name: [unclosed", "csrf": csrf}
    )
    assert yaml_typo.status_code == 422 and "not YAML" in yaml_typo.text
    with read_only(engine) as session:
        [only] = store.history(session, "taobao-dispatched-mail-ops")
    assert only.version == 1 and only.rule.definition()["trigger"]["to"] == "DISPATCHED"


async def test_a_rule_with_branches_is_edited_as_yaml(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "ada", Role.ADMIN)
    await sign_in(web, "ada")
    new = await web.get("/console/automations/new")
    text = """
name: tag-by-size
trigger: {type: order_created}
branches:
  - if: total > 10000
    then: [{set: {field: tag, value: big}}]
  - if: total > 1000
    then: [{set: {field: tag, value: medium}}]
  - then: [{set: {field: tag, value: small}}]
"""
    saved = await web.post("/console/automations/new", data={"yaml": text, "csrf": csrf_of(new)})
    assert saved.status_code == 303
    page = await web.get("/console/automations/rules/tag-by-size")
    assert "else-if / else branches" in page.text and 'name="a0_type"' not in page.text  # no form for it
    assert "value: medium" in page.text  # the YAML editor holds it
    edited = text.replace("value: small", "value: tiny")
    assert (
        await web.post("/console/automations/rules/tag-by-size", data={"yaml": edited, "csrf": csrf_of(page)})
    ).status_code == 303
    renamed = await web.post(
        "/console/automations/rules/tag-by-size",
        data={"yaml": edited.replace("tag-by-size", "other"), "csrf": csrf_of(page)},
    )
    assert renamed.status_code == 422 and "this page edits" in renamed.text
    with read_only(engine) as session:
        assert [v.version for v in store.history(session, "tag-by-size")] == [2, 1]
        assert store.history(session, "other") == []


async def test_other_roles_cannot_see_or_change_automations(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "sam", Role.SALES)
    store.load_file(engine, DEFAULTS, by="test", now=datetime.now(UTC))
    await sign_in(web, "sam")
    home = await web.get("/console")
    assert "/console/automations" not in home.text  # no link in the header
    for path in ("/console/automations", "/console/automations/new", "/console/automations/runs",
                 "/console/automations/rules/new-order-tell-sales-rep"):  # fmt: skip
        assert (await web.get(path)).status_code == 404, path
    off = await web.post(
        "/console/automations/rules/new-order-tell-sales-rep/enabled", data={"csrf": csrf_of(home), "enabled": "false"}
    )
    assert off.status_code == 404
    with read_only(engine) as session:
        assert all(s.rule.enabled and s.version == 1 for s in store.current(session))


async def test_the_run_log_shows_each_step_and_retries_only_failed_runs(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "otto", Role.OPS)
    now = datetime.now(UTC)
    with unit_of_work(engine) as session:
        for run_id, state, error in (("auto-a-1", "completed", None), ("auto-b-1", "failed", "HTTP 503 from the ERP")):
            session.add(
                AutomationRun(
                    run_id=run_id, rule=run_id[5], version=1, subject="SO-RUN-1", trigger="order_created",
                    event_key=f"k-{run_id}", event_data={}, caused_by=[], facts={"order_no": "SO-RUN-1"}, branch=0,
                    state=state, attempt=0, error=error, started_at=now, finished_at=now,
                )
            )  # fmt: skip
        session.add(
            AutomationStep(
                run_id="auto-b-1", attempt=0, position=0, action="notify", state="done", detail="to olga", at=now
            )
        )
        session.add(
            AutomationStep(
                run_id="auto-b-1",
                attempt=0,
                position=1,
                action="webhook",
                state="failed",
                detail="HTTP 503 from the ERP",
                at=now,
            )
        )
    await sign_in(web, "otto")
    listing = await web.get("/console/automations")
    assert "HTTP 503 from the ERP" in listing.text and "auto-a-1" not in listing.text  # only the failed one
    only_failed = await web.get("/console/automations/runs", params={"failed": "true"})
    assert "auto-b-1" in only_failed.text and "auto-a-1" not in only_failed.text
    run = await web.get("/console/automations/runs/auto-b-1")
    assert run.status_code == 200 and 'class="step-done"' in run.text and 'class="step-failed"' in run.text
    assert 'id="retry-failed"' in run.text
    done = await web.get("/console/automations/runs/auto-a-1")
    assert 'id="retry-failed"' not in done.text
    refused = await web.post("/console/automations/runs/auto-a-1/retry", data={"csrf": csrf_of(done)})
    assert refused.status_code == 409 and "only a failed run can be retried" in refused.text
    assert (await web.get("/console/automations/runs/nope")).status_code == 404
