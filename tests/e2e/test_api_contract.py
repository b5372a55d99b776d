"""The served API against its own OpenAPI, on the embedded stack's real processes (dev server, worker, API):
schemathesis generates requests for every route (valid and invalid): no 5xx, every answer as documented.
Hypothesis throws malformed orders and webhooks at the front door: each gets a 4xx and starts no workflow."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from pydantic import ValidationError
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from core.config import Settings
from core.secrets import with_local_secrets
from core.temporal import connect
from integrations.channels import sign
from models.order import Order
from tests.support.embedded_stack import ROOT, embedded_stack
from tests.support.orders import make_order

ORDERFLOW = str(Path(sys.executable).parent / "orderflow")
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from embedded_stack(tmp_path_factory)


@pytest.fixture(scope="module")
def api(stack: dict[str, str]) -> str:
    return f"http://127.0.0.1:{stack['ORDERFLOW_API_PORT']}"


@pytest.fixture(scope="module")
def stack_settings(stack: dict[str, str]) -> Settings:
    """The stack's own settings (its state dir holds the secrets the API signs and checks with)."""
    return with_local_secrets(
        Settings(state_dir=Path(stack["ORDERFLOW_STATE_DIR"]), temporal_address=stack["TEMPORAL_ADDRESS"])
    )


def user_token(stack: dict[str, str], name: str, role: str) -> str:
    done = subprocess.run(
        [ORDERFLOW, "--json", "users", "add", name, "--role", role], cwd=ROOT, env=stack, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    token: str = json.loads(done.stdout)["token"]
    return token


@pytest.fixture(scope="module")
def admin(stack: dict[str, str]) -> str:
    return user_token(stack, "fuzz-admin", "admin")


@pytest.fixture(scope="module")
def sales(stack: dict[str, str]) -> str:
    return user_token(stack, "fuzz-sales", "sales")


def workflow_count(stack_settings: Settings) -> int:
    async def count() -> int:
        client = await connect(stack_settings)
        return (await client.count_workflows()).count

    return asyncio.run(count())


def settled_count(stack_settings: Settings, timeout: float = 30.0) -> int:
    """Visibility is eventually consistent: wait (bounded) until two reads a second apart agree."""
    deadline = time.monotonic() + timeout
    last = workflow_count(stack_settings)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = workflow_count(stack_settings)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the workflow count kept changing for {timeout:.0f}s (last {last})")


# --- malformed input: 4xx, nothing started ------------------------------------------------------------

VALID = make_order("FUZZ-0001").model_dump(mode="json")
WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
    st.sampled_from(["NaN", "-1", "1e999", "0.001", "-0", "", " ", "SKU-1001\u0000", "9" * 40, "Infinity"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
FIELD_PATHS = [
    ("order_no",),
    ("customer_id",),
    ("sales_rep",),
    ("currency",),
    ("order_type",),
    ("payment",),
    ("payment", "method"),
    ("ship_to",),
    ("ship_to", "phone"),
    ("lines",),
    ("lines", 0),
    ("lines", 0, "sku"),
    ("lines", 0, "qty"),
    ("lines", 0, "unit_price"),
]


@st.composite
def malformed_orders(draw: st.DrawFn) -> dict[str, Any]:
    """A valid order with one thing broken: a field missing, of the wrong type or out of range, or unknown.
    Mutations the canonical model still accepts (e.g. a price given as the integer 5) are not malformed."""
    order = json.loads(json.dumps(VALID))
    order["order_no"] = f"FUZZ-{draw(st.integers(min_value=1, max_value=10**9))}"
    path = draw(st.sampled_from(FIELD_PATHS))
    parent: Any = order
    for step in path[:-1]:
        parent = parent[step]
    how = draw(st.sampled_from(["drop", "wrong", "extra"]))
    if how == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    elif how == "extra":
        target = parent if isinstance(parent, dict) else order
        target[draw(st.sampled_from(["surprise", "total", "status", "__proto__"]))] = draw(WRONG_VALUES)
    else:
        parent[path[-1]] = draw(WRONG_VALUES)
    try:
        Order.model_validate(order)
    except ValidationError:
        return dict(order)
    assume(False)
    raise AssertionError("unreachable")


def test_malformed_orders_and_webhooks_are_refused_and_start_nothing(
    api: str, sales: str, stack_settings: Settings
) -> None:
    before = settled_count(stack_settings)
    answers: list[int] = []
    with httpx.Client(base_url=api, timeout=30, headers={"Authorization": f"Bearer {sales}"}) as http:

        @FUZZ
        @given(order=malformed_orders())
        def post_order(order: dict[str, Any]) -> None:
            body = json.dumps(order)  # NaN and Infinity go out as such: not JSON, refused like the rest
            answer = http.post("/orders", content=body, headers={"Content-Type": "application/json"})
            answers.append(answer.status_code)
            assert answer.status_code == 422, (order, answer.text)

        @FUZZ
        @given(
            body=st.one_of(
                st.binary(max_size=2000),
                st.builds(
                    lambda d: json.dumps(d).encode(),
                    st.dictionaries(
                        st.sampled_from(["id", "tid", "orderId", "line_items", "status", "orders", "shipping_address"]),
                        WRONG_VALUES,
                        max_size=6,
                    ),
                ),
            ),
            channel=st.sampled_from(["shopify", "taobao", "jd"]),
            signed=st.booleans(),
        )
        def post_webhook(body: bytes, channel: str, signed: bool) -> None:
            headers = sign(channel, body, stack_settings) if signed else {}
            answer = http.post(f"/webhooks/channels/{channel}", content=body, headers=headers)
            answers.append(answer.status_code)
            if signed:  # signed garbage: unusable (422), or a signed event that is no new order (200)
                assert answer.status_code in (200, 422), answer.text
                assert answer.status_code == 422 or answer.json()["order_no"] is None
            else:
                assert answer.status_code == 401, answer.text

        post_order()
        post_webhook()
    assert len(answers) >= 60
    assert settled_count(stack_settings) == before  # no workflow was started by any of them


# --- the whole API against its OpenAPI ---------------------------------------------------------------------


def test_every_route_answers_as_documented_and_never_5xx(api: str, admin: str) -> None:
    """Valid and invalid requests for every operation; all of schemathesis' response checks (no 5xx, documented
    status codes, content types and bodies matching their schemas, auth actually enforced)."""
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an unparsable operation raises here: a failure
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: Any) -> None:
                # Not positive_data_acceptance: the API rightly refuses some schema-valid requests with a 4xx that
                # no schema can express (an order total over the cap, a receipt for an unknown SKU).
                excluded = [positive_data_acceptance]
                if case.operation.path.startswith("/kpis"):
                    # Its optional query filters: one "mutated" into a one-item array goes on the wire as the same
                    # string (?warehouse=x), so no server can refuse it; bad values have tests of their own
                    # (tests/integration/test_kpi_routes.py).
                    excluded.append(negative_data_rejection)
                case.call_and_validate(
                    headers={"Authorization": f"Bearer {admin}"}, timeout=60, excluded_checks=excluded
                )

            try:
                call()
            except Unsatisfiable:
                continue  # nothing about this operation can be invalid (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, then report them all
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])
    assert operations >= 15
    assert not failures, "\n\n".join(failures)
