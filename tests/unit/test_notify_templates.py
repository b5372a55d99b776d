"""Notice templates (sandboxed Jinja2 from a YAML file), and the small pure parts of the notify channels."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI
from jinja2.exceptions import SecurityError

from activities.notify import NotifyActivities
from core.config import Settings
from core.db import make_engine
from dev.simulator.sms_gateway import SIM_SMS_KEY, sms_gateway_router
from integrations.notify.base import PermanentDeliveryError
from integrations.notify.mail import message_id
from integrations.notify.sms import msisdn
from services.notify.relay import retry_delay
from services.notify.templates import (
    REQUIRED_KINDS,
    TemplateError,
    _environment,
    load_templates,
    parse_templates,
)

PACKAGED = Settings().notify_templates_file
# What the workflow hands each kind (workflows/order.py `_notify` calls) plus what the activity adds.
ORDER = {"order_no": "SO-20261122-0042", "customer_name": "张三", "total": "1299.00", "currency": "CNY"}
EVENTS: dict[str, dict[str, str]] = {
    "approval_needed": {"role": "finance"},
    "approval_reminder": {"role": "finance", "waited": "1 day, 0:00:00"},
    "approval_escalated": {"role": "finance_director", "waited": "1 day, 0:00:00", "level_role": "finance"},
    "payment_requested": {},
    "backordered": {"role": "ops", "shortages": "SKU-1024 short 2"},
    "refund": {"role": "finance", "reason": "cancelled by the customer"},
    "refund_approval": {"role": "finance", "amount": "8800.00", "reason": "cancelled by the customer"},
    "refunded": {"amount": "99.50"},
    "cancelled": {"reason": "payment deadline passed"},
    "rejected": {"reason": "unknown SKU SKU-9999"},
    "dispatched": {"carrier": "kuaidi100", "tracking_no": "SF1234567890123"},
    "out_for_delivery": {"tracking_no": "SF1234567890123", "status": "OUT_FOR_DELIVERY"},
    "delivery_exception": {"tracking_no": "SF1234567890123", "status": "DELIVERY_EXCEPTION"},
    "delivered": {"tracking_no": "SF1234567890123", "signed_by": "李四", "status": "DELIVERED"},
}
MUST_SAY = {  # the facts each notice exists to tell
    "approval_needed": ["1299.00 CNY", "finance decision"],
    "approval_reminder": ["waited 1 day, 0:00:00", "finance decision"],
    "approval_escalated": ["waited 1 day, 0:00:00", "finance decision"],
    "payment_requested": ["张三", "prepayment of 1299.00 CNY"],
    "backordered": ["SKU-1024 short 2"],
    "refund": ["refund 1299.00 CNY", "cancelled by the customer"],
    "refund_approval": ["8800.00 CNY", "Refund to approve"],
    "refunded": ["张三", "refunded 99.50 CNY"],
    "cancelled": ["张三", "was cancelled: payment deadline passed"],
    "rejected": ["张三", "could not accept", "unknown SKU SKU-9999"],
    "dispatched": ["张三", "kuaidi100", "tracking number SF1234567890123"],
    "out_for_delivery": ["张三", "SF1234567890123", "out for delivery today"],
    "delivery_exception": ["SF1234567890123", "delivery problem: DELIVERY_EXCEPTION"],
    "delivered": ["张三", "signed for by 李四"],
}


def packaged_document() -> dict[str, object]:
    loaded = yaml.safe_load(PACKAGED.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def with_template(kind: str, field: str, source: str) -> str:
    document = packaged_document()
    kinds = document["kinds"]
    assert isinstance(kinds, dict)
    kinds[kind][field] = source
    return yaml.safe_dump(document, allow_unicode=True)


def test_the_packaged_file_has_every_kind_the_workflow_sends() -> None:
    templates = load_templates(PACKAGED)
    assert templates.kinds >= REQUIRED_KINDS
    assert set(EVENTS) == REQUIRED_KINDS


@pytest.mark.parametrize("kind", sorted(REQUIRED_KINDS))
def test_every_kind_renders_with_realistic_variables(kind: str) -> None:
    notice = load_templates(PACKAGED).render(kind, {**ORDER, **EVENTS[kind]})
    assert notice.subject and "\n" not in notice.subject and len(notice.subject) <= 200
    assert ORDER["order_no"] in notice.subject
    for text in (notice.body, notice.sms):
        assert ORDER["order_no"] in text
        assert "{{" not in text and "{%" not in text
        for fact in MUST_SAY[kind]:
            assert fact in text, (kind, fact, text)
    assert notice.text_for("sms") == notice.sms
    assert notice.text_for("email") == notice.text_for("internal") == notice.body


def test_optional_parts_drop_out_when_the_event_lacks_them() -> None:
    templates = load_templates(PACKAGED)
    # The workflow's compensation sends delivery_exception with only a status (no parcel yet).
    failed = templates.render("delivery_exception", {"order_no": "SO-1", "status": "parcel not delivered"})
    assert failed.body == "Order SO-1 has a delivery problem: parcel not delivered."
    unsigned = templates.render("delivered", {"order_no": "SO-1", "customer_name": "张三"})
    assert "was delivered." in unsigned.sms and "signed" not in unsigned.sms


def test_unknown_kinds_use_the_fallback_and_extra_variables_are_ignored() -> None:
    notice = load_templates(PACKAGED).render("parcel_lost", {"order_no": "SO-1", "not_a_variable": "x"})
    assert (notice.subject, notice.body) == ("Order SO-1: parcel_lost", "SO-1: parcel_lost")


def test_variables_are_data_never_template_code_and_cannot_break_the_subject() -> None:
    notice = load_templates(PACKAGED).render(
        "cancelled", {"order_no": "SO-1\r\nBcc: all@example.com", "customer_name": "{{ 7 * 7 }}", "reason": "x"}
    )
    assert notice.subject == "Your order SO-1 Bcc: all@example.com was cancelled"
    assert notice.body.startswith("Dear {{ 7 * 7 }},")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ order_no.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ '{0.__class__}'.format(order_no) }}",
        "{% if not order_no %}x{% else %}{{ reason.__class__ }}{% endif %}",
    ],
)
def test_a_sandbox_escape_is_refused_at_load(source: str) -> None:
    with pytest.raises(TemplateError, match=r"kind 'dispatched', body: SecurityError") as refused:
        parse_templates(with_template("dispatched", "body", source))
    assert isinstance(refused.value.__cause__, SecurityError)
    with pytest.raises(SecurityError):  # the sandbox itself, without our checks around it
        _environment().from_string(source).render(order_no="SO-1", reason="x")


@pytest.mark.parametrize(
    "source", ["{{ trackingno }}", "{% if not tracking_no %}{{ trackingno }}{% endif %}", "{{ customer.name }}"]
)
def test_an_unknown_variable_is_an_error_at_load(source: str) -> None:
    with pytest.raises(TemplateError, match=r"kind 'delivered', sms: unknown variable\(s\) (trackingno|customer)"):
        parse_templates(with_template("delivered", "sms", source))


def test_a_syntax_error_names_the_kind_field_and_line() -> None:
    with pytest.raises(TemplateError, match=r"kind 'refund', body, line 2: TemplateSyntaxError"):
        parse_templates(with_template("refund", "body", "Refund\n{% if reason %}{{ reason }}"))


def test_a_file_missing_a_kind_or_with_a_misspelt_field_is_refused() -> None:
    document = packaged_document()
    kinds = document["kinds"]
    assert isinstance(kinds, dict)
    del kinds["delivered"]
    with pytest.raises(TemplateError, match="lack the kind.s. delivered"):
        parse_templates(yaml.safe_dump(document))
    with pytest.raises(TemplateError, match="invalid notice templates"):
        parse_templates(with_template("refund", "subjct", "x"))


def test_a_broken_templates_file_stops_the_activities_at_construction(tmp_path: Path) -> None:
    broken = tmp_path / "templates.yaml"
    broken.write_text(with_template("rejected", "subject", "{{ ''.__class__ }}"), encoding="utf-8")
    engine = make_engine(f"sqlite:///{tmp_path / 'unused.db'}")  # never connected
    with pytest.raises(TemplateError, match=f"{broken}: kind 'rejected', subject: SecurityError"):
        NotifyActivities(engine, Settings(notify_templates_file=broken))
    with pytest.raises(TemplateError, match="cannot read notice templates file"):
        NotifyActivities(engine, Settings(notify_templates_file=tmp_path / "missing.yaml"))


def test_an_edited_file_is_loaded_again(tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text(with_template("refund", "sms", "Refund {{ order_no }}"), encoding="utf-8")
    assert load_templates(path).render("refund", {"order_no": "SO-1"}).sms == "Refund SO-1"
    path.write_text(with_template("refund", "sms", "Refund due for order {{ order_no }}"), encoding="utf-8")
    assert load_templates(path).render("refund", {"order_no": "SO-1"}).sms == "Refund due for order SO-1"


# --- the channels' pure parts --------------------------------------------------------------------------------


def test_retries_back_off_exponentially_up_to_an_hour() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(8) == timedelta(hours=1) and retry_delay(500) == timedelta(hours=1)


def test_message_id_is_the_same_for_every_attempt_at_one_notice() -> None:
    first = message_id("SO-1:dispatched:SF1:email:buyer@xingchen.example", "orderflow <noreply@shop.example>")
    assert first == message_id("SO-1:dispatched:SF1:email:buyer@xingchen.example", "noreply@shop.example")
    assert first.startswith("<") and first.endswith(".notice@shop.example>") and ":" not in first
    assert first != message_id("SO-1:dispatched:SF2:email:buyer@xingchen.example", "noreply@shop.example")


def test_phone_numbers_are_sent_as_digits() -> None:
    assert msisdn("+86 138-0000-0000") == "8613800000000"
    with pytest.raises(PermanentDeliveryError):
        msisdn("n/a")


async def test_the_simulated_gateway_dedupes_by_reference_checks_the_key_and_injects_faults() -> None:
    app = FastAPI()
    app.include_router(sms_gateway_router())
    auth = {"Authorization": f"AccessKey {SIM_SMS_KEY}"}
    sms = {"recipients": ["8613800000000"], "originator": "orderflow", "body": "hi", "reference": "SO-1:x"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.invalid") as http:
        wrong_key = {"Authorization": "AccessKey wrong"}
        assert (await http.post("/sms/messages", json=sms, headers=wrong_key)).status_code == 401
        first = await http.post("/sms/messages", json=sms, headers=auth)
        again = await http.post("/sms/messages", json=sms, headers=auth)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"] and first.json()["recipients"]["totalCount"] == 1
        assert (await http.post("/sms/faults", json={"times": 2, "status": 503})).status_code == 201
        other = {**sms, "reference": "SO-2:x"}
        statuses = [(await http.post("/sms/messages", json=other, headers=auth)).status_code for _ in range(3)]
        assert statuses == [503, 503, 201]
        assert (await http.post("/sms/messages", json={**sms, "recipients": []}, headers=auth)).status_code == 422
        listed = (await http.get("/sms/messages")).json()
        assert [(m["reference"], m["submissions"]) for m in listed["items"]] == [("SO-1:x", 2), ("SO-2:x", 1)]
        assert (await http.delete("/sms/messages")).status_code == 204
        assert (await http.get("/sms/messages")).json() == {"count": 0, "items": []}


def test_approval_requests_carry_the_approve_link_and_shipping_notices_the_tracking_link() -> None:
    templates = load_templates(PACKAGED)
    approve, track = "https://orders.example.com/console/approve/TOKEN", "https://orders.example.com/track/TOKEN"
    for kind in ("approval_needed", "approval_reminder", "approval_escalated"):
        mailed = templates.render(kind, {**ORDER, **EVENTS[kind], "approve_url": approve})
        assert approve in mailed.body and approve not in mailed.sms  # texts stay short; the mail decides
        assert "/console/approve/" not in templates.render(kind, {**ORDER, **EVENTS[kind]}).body  # the inbox's copy
    for kind in ("dispatched", "out_for_delivery", "delivery_exception", "delivered"):
        notice = templates.render(kind, {**ORDER, **EVENTS[kind], "tracking_url": track})
        assert track in notice.body and track in notice.sms, kind
