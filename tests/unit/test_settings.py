"""Settings split by concern, and the one place the workflow's policy comes from."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel

from core.config import (
    AutomationSettings,
    CarrierSettings,
    DatabaseSettings,
    NotifySettings,
    PaymentSettings,
    PolicySettings,
    SecretSettings,
    Settings,
    StackSettings,
    TemporalSettings,
)
from models.contracts import Policy

CONCERNS: tuple[type[BaseModel], ...] = (
    AutomationSettings,
    TemporalSettings,
    DatabaseSettings,
    StackSettings,
    CarrierSettings,
    NotifySettings,
    PaymentSettings,
    SecretSettings,
    PolicySettings,
)
# What the worker adds to the policy from its own knowledge of carriers (not a setting).
CARRIER_KNOWLEDGE = {"carriers", "tracking_push_callbacks"}


def test_every_setting_belongs_to_exactly_one_concern() -> None:
    owners: dict[str, list[str]] = {}
    for concern in CONCERNS:
        for name in concern.model_fields:
            owners.setdefault(name, []).append(concern.__name__)
    assert {name for name, found in owners.items() if len(found) > 1} == set()
    assert set(Settings.model_fields) == set(owners)


def test_the_workflow_policy_is_the_policy_settings_under_the_contracts_names() -> None:
    assert set(Policy.model_fields) - CARRIER_KNOWLEDGE <= set(PolicySettings.model_fields)
    settings = Settings.model_validate(
        {"allow_split": False, "approval_deadline": timedelta(hours=5), "tracking_batch_carriers": ["17track", "sim"]}
    )
    policy = settings.policy.workflow_policy(
        carriers={"sim", "17track"}, batch_capable={"17track"}, push_callbacks={"kuaidi100": "https://x/hook"}
    )
    assert policy.allow_split is False and policy.approval_deadline == timedelta(hours=5)
    assert policy.tracking_batch_carriers == ["17track"]  # sim has no batch query: polled one by one
    assert (policy.carriers, policy.tracking_push_callbacks) == (["17track", "sim"], {"kuaidi100": "https://x/hook"})
    for name in set(Policy.model_fields) - CARRIER_KNOWLEDGE - {"tracking_batch_carriers"}:
        assert getattr(policy, name) == getattr(settings, name), name


def test_the_documented_environment_names_still_set_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERFLOW_ALLOW_SPLIT_SHIPMENTS", "false")
    monkeypatch.setenv("ORDERFLOW_PAYMENT_DEADLINE", "PT2H")
    settings = Settings(_env_file=None)
    assert settings.allow_split is False and settings.payment_deadline == timedelta(hours=2)


@pytest.mark.parametrize(
    ("url_setting", "credential"),
    [
        ("carrier_kuaidi100_url", "carrier_kuaidi100_salt"),
        ("carrier_17track_url", "carrier_17track_key"),
        ("carrier_aftership_url", "carrier_aftership_webhook_secret"),
        ("sms_gateway_url", "sms_gateway_key"),
    ],
)
def test_simulator_credentials_are_refused_for_a_real_service(url_setting: str, credential: str) -> None:
    with pytest.raises(ValueError, match=f"ORDERFLOW_{credential.upper()}"):
        Settings.model_validate({url_setting: "https://api.real-service.example"})
    real = {
        "carrier_kuaidi100_key": "k",
        "carrier_kuaidi100_salt": "s",
        "carrier_17track_key": "t",
        "carrier_aftership_key": "a",
        "carrier_aftership_webhook_secret": "w",
        "sms_gateway_key": "g",
    }
    assert Settings.model_validate({url_setting: "https://api.real-service.example", **real})
    # On this machine (the embedded stack, the tests) or at the simulator itself, the simulator's are fine.
    assert Settings.model_validate({url_setting: "http://127.0.0.1:8081/any"})
    assert Settings.model_validate(
        {"carrier_sim_url": "http://carrier-sim:8081", url_setting: "http://carrier-sim:8081/x"}
    )
