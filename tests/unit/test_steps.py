"""The workflows call activities through the interfaces in workflows/steps.py: each one must be served by the
worker under the same name, taking and returning the same types (a mismatch would fail only at run time)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, get_type_hints

import httpx
from temporalio import activity

from core.db import make_engine
from tests.conftest import make_settings
from worker import activity_functions
from workflows.steps import INTERFACES


async def test_every_interface_method_is_served_with_the_same_signature(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'steps.db'}")
    async with httpx.AsyncClient() as http:
        served = {
            activity._Definition.must_from_callable(fn).name: fn
            for fn in activity_functions(engine, make_settings(tmp_path, "http://127.0.0.1:1"), http)
        }
    declared: dict[str, Any] = {}
    for interface in INTERFACES:
        for name, method in inspect.getmembers(interface, inspect.isfunction):
            definition = activity._Definition.from_callable(method)
            assert definition is not None and definition.name, f"{interface.__name__}.{name} is not an activity"
            declared[definition.name] = method
    assert len(declared) >= 17
    assert set(declared) <= set(served), f"not served: {sorted(set(declared) - set(served))}"
    for name, method in declared.items():
        implementation = served[name]
        assert get_type_hints(implementation) == get_type_hints(method), name
        assert inspect.iscoroutinefunction(implementation) == inspect.iscoroutinefunction(method), name
