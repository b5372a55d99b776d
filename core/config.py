"""The settings, one object read from the environment (and `.env` when present), split by concern.

Each concern is its own model below (Temporal, database, embedded stack, carriers, notices, payments, secrets,
policy); `Settings` is all of them, so a setting is `settings.<name>` and its environment variable is `ORDERFLOW_<NAME>`
(docs/contract.md's public names — TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, DATABASE_URL, ORDERFLOW_API — without the
prefix). Building Settings reads the environment only: the embedded stack's secrets file is created or read by an
explicit start-up step (core/secrets.py `with_local_secrets`), never as a side effect of importing or building.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, Field, StringConstraints, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.allocation import LotOrder
from models.contracts import Policy

# An invoice policy as settings write it (domain/billing.py InvoiceTiming reads it): dispatch/parcel,
# dispatch/order, delivery/parcel, delivery/order or approval/order.
InvoicePolicyText = Annotated[str, StringConstraints(pattern=r"^((dispatch|delivery)/(parcel|order)|approval/order)$")]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A source checkout keeps its state beside the code; an installed package in the directory it is run from.
_DEFAULT_STATE_DIR = (
    PROJECT_ROOT / ".orderflow" if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd() / ".orderflow"
)

# Credentials that only the carrier simulator (its carriers, SMS gateway and payment provider) accept: public
# knowledge, so refused for an endpoint the simulator does not play (Settings validates it: the embedded stack and
# the tests talk to loopback).
SIMULATOR_CREDENTIAL_PREFIX = "sim-"
_CREDENTIALS_BY_ENDPOINT = {
    "carrier_kuaidi100_url": ("carrier_kuaidi100_key", "carrier_kuaidi100_salt"),
    "carrier_17track_url": ("carrier_17track_key",),
    "carrier_aftership_url": ("carrier_aftership_key", "carrier_aftership_webhook_secret"),
    "sms_gateway_url": ("sms_gateway_key",),
    "payment_provider_url": ("payment_provider_key",),
}
_LOOPBACK_HOSTS = frozenset({"localhost", "::1"})


class TemporalSettings(BaseModel):
    temporal_address: str = Field(
        "localhost:7233", validation_alias=AliasChoices("TEMPORAL_ADDRESS", "ORDERFLOW_TEMPORAL_ADDRESS")
    )
    temporal_namespace: str = Field(
        "default", validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "ORDERFLOW_TEMPORAL_NAMESPACE")
    )
    task_queue: str = "orderflow"
    worker_activity_threads: int = 16
    # Where people open a workflow in the Temporal UI (the console links each order there); empty: the embedded
    # stack's UI on this machine.
    temporal_ui_url: str = ""


class DatabaseSettings(BaseModel):
    database_url: str = Field("", validation_alias=AliasChoices("DATABASE_URL", "ORDERFLOW_DATABASE_URL"))
    # The embedded stack's state: SQLite database, secrets file, logs and pids.
    state_dir: Path = _DEFAULT_STATE_DIR

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.state_dir / 'orderflow.db'}"


class StackSettings(BaseModel):
    """The embedded stack (make up / make demo) and where its API is."""

    # Where the CLI and the demo reach the API; empty: the embedded stack's, on api_port.
    api_url: str = Field("", validation_alias=AliasChoices("ORDERFLOW_API", "ORDERFLOW_API_URL"))
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    simulator_port: int = 8081
    smtp_sink_port: int = 8025  # the embedded stack's loopback mail sink (served by the simulator process)
    api_port: int = 8000
    # Seconds between status steps of a simulated parcel: a parcel is signed for ~5 steps after dispatch.
    simulator_step_seconds: float = 3.0


class CarrierSettings(BaseModel):
    # Base URL of the carrier simulator (carrier code `sim`); empty: the embedded stack's, on simulator_port.
    carrier_sim_url: str = ""
    # Carrier aggregators (carrier codes `kuaidi100`, `17track`, `aftership`). An empty URL means the carrier
    # simulator's route for that API under carrier_sim_url (/kuaidi100, /track17/track/v2.2, /aftership/v4), and
    # the credential defaults are the simulator's; a real URL needs real credentials (Settings refuses the sim-ones).
    carrier_kuaidi100_url: str = ""
    carrier_kuaidi100_customer: str = "SIMCUSTOMER"
    carrier_kuaidi100_key: str = "sim-kuaidi100-key"
    carrier_kuaidi100_salt: str = "sim-kuaidi100-salt"  # we choose it; signs Kuaidi100's pushes
    carrier_kuaidi100_company: str = "shunfeng"  # default company code `com`; `com:number` overrides per parcel
    carrier_17track_url: str = ""
    carrier_17track_key: str = "sim-17track-key"  # the 17token header; also signs pushes
    carrier_aftership_url: str = ""
    carrier_aftership_key: str = "sim-aftership-key"  # the as-api-key header
    carrier_aftership_webhook_secret: str = "sim-aftership-secret"
    carrier_aftership_slug: str = "sf-express"  # default courier slug; `slug:number` overrides per parcel
    # Where carriers reach our webhooks (the API's public base URL). Set: parcels of carriers that take a
    # per-parcel callback (Kuaidi100) are subscribed at dispatch, so news is pushed; polling stays as backstop.
    public_api_url: str = ""
    # What each carrier promises: delivered within this many days of dispatch (the carriers' on-time KPI); a carrier
    # not listed promises carrier_promise_default_days. Fixed on the parcel when it is dispatched.
    carrier_promise_days: dict[str, int] = {}
    carrier_promise_default_days: int = Field(3, ge=1)

    def promise_days(self, carrier: str) -> int:
        return self.carrier_promise_days.get(carrier, self.carrier_promise_default_days)


class NotifySettings(BaseModel):
    """Notices (services/notify): each worker's outbox relay sends queued notices every notify_relay_interval seconds:
    e-mail over SMTP, SMS through an HTTP gateway (MessageBird's API shape; the carrier simulator serves one under
    /sms). An empty smtp_host or sms_gateway_url leaves that channel unconfigured: its notices stay in the outbox as
    'unsent', never 'sent', until it is configured."""

    smtp_host: str = ""
    smtp_port: int = 587
    smtp_from: str = "orderflow <noreply@orderflow.example>"
    smtp_username: str = ""  # empty: no AUTH
    smtp_password: str = ""
    smtp_starttls: bool = True  # upgrade with STARTTLS before AUTH (false only for a local relay or a test sink)
    sms_gateway_url: str = ""  # base URL; notices are POSTed to {sms_gateway_url}/messages
    sms_gateway_key: str = "sim-sms-key"  # sent as `Authorization: AccessKey <key>`; the default is the simulator's
    sms_originator: str = "orderflow"  # the SMS sender id (a number, or at most 11 letters and digits)
    notify_templates_file: Path = PROJECT_ROOT / "services" / "notify" / "templates.yaml"
    notify_relay_interval: float = Field(5.0, gt=0)  # seconds between outbox sweeps
    notify_max_attempts: int = Field(8, ge=1)  # then the row is 'failed' (retries back off 30 s, 1 min, … 1 h)
    # How long the links in notices work: an approval request's approve link, a shipping notice's tracking page.
    approval_link_lifetime: timedelta = timedelta(hours=72)
    tracking_link_lifetime: timedelta = timedelta(days=60)
    # What the customer's tracking page says a parcel should take from dispatch to the door (until it arrives).
    expected_transit: timedelta = timedelta(days=3)


class PaymentSettings(BaseModel):
    """Refunds (integrations/payments): asked of a payment provider with a Stripe-shaped API (the carrier simulator
    serves one under /pay)."""

    # Empty: the carrier simulator's, {carrier_sim_url}/pay (http://127.0.0.1:SIMULATOR_PORT/pay unless that is set).
    payment_provider_url: str = ""
    payment_provider_key: str = "sim-pay-key"  # sent as `Authorization: Bearer <key>`; the default is the simulator's


class AutomationSettings(BaseModel):
    """Automations (rules/automation.py, services/automation): the rule set is in the database, versioned; the
    file seeds the rules that are not there yet when the worker starts (and `orderflow automations load`).
    Each worker's dispatcher matches the event outbox against the rules every automation_interval seconds."""

    automations_file: Path = PROJECT_ROOT / "rules" / "default_automations.yaml"
    automations_enabled: bool = True  # false: events are still written, nothing fires (the bench's reference)
    automation_interval: float = Field(0.5, gt=0)
    automation_batch: int = Field(200, ge=1, le=5000)  # events per dispatcher pass
    # A firing that only writes to the database (notify, set, to-do, requisition; no delay, no wait) is done in
    # the dispatcher's own transaction with its run-log rows; false: every firing is an AutomationRun workflow.
    automation_immediate: bool = True
    # child: `python worker.py` runs the outboxes' readers (the notice relay, the automation dispatcher) in a
    # process of their own (its own interpreter lock); inline: in the worker's process.
    outbox_process: Literal["child", "inline"] = "child"
    # How much nicer than the worker its outbox process runs (os.nice): on a busy machine the order pipeline goes
    # first; the outboxes, whose work may wait a second, take the idle time (and a share when there is none).
    outbox_nice: int = Field(10, ge=0, le=19)
    # Signs outgoing webhooks (X-Orderflow-Signature: sha256=HMAC(body)); filled from the state dir locally.
    automation_webhook_secret: str = ""
    # Run logs are kept as long as orders are; set this to delete finished runs older than it.
    automation_run_retention: timedelta | None = None

    # --- money (services/billing) ---
    # The legal entity whose gap-free series numbers the invoices (one series per entity and year).
    legal_entity: str = Field("OF", min_length=1, max_length=8, pattern=r"^[A-Z0-9]+$")
    # The seller as the invoice PDFs print it (services/billing/invoice_document.py), for legal_entity's invoices.
    legal_entity_name: str = "Orderflow Trading Co., Ltd."
    legal_entity_address: str = ""  # printed as given; "\n" breaks lines
    legal_entity_tax_id: str = ""  # empty: no tax id line
    # The invoice PDFs' font file (TTF/OTF/TTC, with Chinese glyphs); empty: the first of a few known system fonts.
    pdf_font: str = ""
    # VAT rate per product tax class (products.tax_class); prices include tax (domain/billing.py).
    tax_rates: dict[str, Decimal] = Field(
        default_factory=lambda: {"standard": Decimal("0.13"), "reduced": Decimal("0.09"), "zero": Decimal("0")}
    )
    # When invoices are issued and what each bills (domain/billing.py InvoiceTiming, `point/per`): the business's
    # default, then per channel; a customer's own (customers.invoice_policy) comes first.
    invoice_policy: InvoicePolicyText = "dispatch/parcel"
    invoice_policy_by_channel: dict[str, InvoicePolicyText] = Field(default_factory=dict)
    # A refund above this amount waits for a signed finance decision before it is paid out (services/refunds.py).
    refund_approval_over: Decimal = Field(Decimal("5000.00"), ge=0, decimal_places=2)

    @field_validator("tax_rates")
    @classmethod
    def _rates_are_fractions(cls, rates: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [f"{name}={rate}" for name, rate in rates.items() if not Decimal(0) <= rate < 1]
        if bad:
            raise ValueError(f"tax rates are fractions between 0 and 1 (13 % is 0.13): {', '.join(bad)}")
        return rates


# The secrets the embedded stack creates once in its state dir (core/secrets.py) when they are not given.
LOCAL_SECRETS = (
    "decision_secret",
    "link_secret",
    "pii_keys",
    "pii_key_id",
    "channel_shopify_secret",
    "channel_taobao_secret",
    "channel_jd_secret",
    "automation_webhook_secret",
)


class SecretSettings(BaseModel):
    # Empty secrets are filled from state_dir/secrets.json at start-up (core/secrets.py) unless local_secrets is
    # false (production: every one comes from the environment, see docker-compose.yml).
    local_secrets: bool = True
    # HMAC key the API (and CLI) sign approvers' decisions with; the order workflow's update validator refuses
    # a decision without a valid signature, so nobody can approve around the API by talking to Temporal.
    decision_secret: str = ""
    # HMAC key of the links notices carry: approve-from-the-mail tokens (derived from it, never stored) and the
    # customers' tracking links. Changing it breaks the links already sent.
    link_secret: str = ""
    # AES-256-GCM keys (key id -> base64 of 32 bytes) of the payload codec that encrypts every workflow payload
    # (customer names, phones, addresses) before it reaches Temporal; pii_key_id encrypts, all keys decrypt
    # (rotation: add a key, switch pii_key_id, keep the old one while histories need it).
    pii_keys: dict[str, str] = {}
    pii_key_id: str = ""
    # Browser origins allowed to call the codec endpoints (/codec/decode): the Temporal UI's.
    codec_cors_origins: list[str] = []
    # The codec endpoints decrypt customer data: they take only ops/admin tokens. The embedded stack turns this
    # off (its API listens on loopback only and the dev server's UI cannot send a token).
    codec_requires_token: bool = True
    # Shared secrets that sign the sales channels' order webhooks (/webhooks/channels/{channel}).
    channel_shopify_secret: str = ""
    channel_taobao_secret: str = ""
    channel_jd_secret: str = ""
    # Who a channel's orders belong to: its customer account and sales rep (platform orders carry neither).
    channel_customer_ids: dict[str, str] = {"shopify": "C-1001", "taobao": "C-1003", "jd": "C-1002"}
    channel_sales_reps: dict[str, str] = {"shopify": "bob", "taobao": "bob", "jd": "bob"}

    def missing_secrets(self) -> list[str]:
        return [name for name in LOCAL_SECRETS if not getattr(self, name)]


class PolicySettings(BaseModel):
    """The business policy: what the review step hands each order workflow (models.contracts.Policy, built by
    `workflow_policy`, so replays see the values the run saw), plus what the checking steps apply themselves."""

    rules_file: Path = PROJECT_ROOT / "rules" / "default_rules.yaml"
    price_tolerance: Decimal = Decimal("0.05")  # a line price may deviate this much from the price list
    # Split an order across warehouses when no single one holds it all (review rules may choose per order).
    allow_split: bool = Field(
        True, validation_alias=AliasChoices("ORDERFLOW_ALLOW_SPLIT", "ORDERFLOW_ALLOW_SPLIT_SHIPMENTS", "allow_split")
    )
    lot_order: LotOrder = "fifo"  # default; review rules may choose per order
    approval_reminder: timedelta = timedelta(days=1)
    approval_deadline: timedelta = timedelta(days=3)
    payment_deadline: timedelta = timedelta(days=3)
    backorder_recheck: timedelta = timedelta(hours=6)
    backorder_deadline: timedelta = timedelta(days=14)
    tracking_poll_interval: timedelta = timedelta(hours=1)
    tracking_stall_after: timedelta = timedelta(days=3)  # no carrier news this long: DELIVERY_EXCEPTION + ops
    tracking_give_up_after: timedelta = timedelta(days=30)  # no news this long: the parcel is EXPIRED
    # Ops' exceptions page lists a parcel on its way with no carrier news for this long (well before it stalls).
    parcel_quiet_after: timedelta = timedelta(hours=24)
    # What we promise the customer: the order leaves the warehouse within this long of reaching us (the on-time
    # dispatch KPI); fixed on the order when it is registered.
    dispatch_promise: timedelta = timedelta(hours=48)
    # Where the business's days begin and end (an out-of-office span's days), an IANA name such as Asia/Shanghai.
    business_time_zone: str = "UTC"
    # The longest out-of-office span one substitution may cover.
    substitution_max_days: int = Field(92, ge=1)
    # Carriers polled in batches by one CarrierPoller per carrier (their batch query, e.g. 40 numbers a call)
    # instead of one poll per parcel. Only carriers with a batch API count; [] turns batching off.
    tracking_batch_carriers: list[str] = ["17track"]

    @field_validator("business_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai or UTC)") from None
        return value

    @property
    def business_zone(self) -> ZoneInfo:
        return ZoneInfo(self.business_time_zone)

    def workflow_policy(
        self, *, carriers: Iterable[str], batch_capable: Iterable[str], push_callbacks: Mapping[str, str]
    ) -> Policy:
        """The policy an order workflow follows: these settings under the contract's names, and what the worker
        knows about carriers (codes it has adapters for, which have a batch query, where each pushes)."""
        batch = set(batch_capable)
        shared = {name: getattr(self, name) for name in Policy.model_fields if name in type(self).model_fields}
        return Policy.model_validate(
            {
                **shared,
                "tracking_batch_carriers": [c for c in self.tracking_batch_carriers if c in batch],
                "tracking_push_callbacks": dict(push_callbacks),
                "carriers": sorted(carriers),
            }
        )


class Settings(
    BaseSettings,
    TemporalSettings,
    DatabaseSettings,
    StackSettings,
    CarrierSettings,
    NotifySettings,
    PaymentSettings,
    SecretSettings,
    PolicySettings,
    AutomationSettings,
):
    """Everything configurable (the concerns above). Names without the ORDERFLOW_ prefix are docs/contract.md's."""

    model_config = SettingsConfigDict(env_prefix="ORDERFLOW_", env_file=".env", extra="ignore", populate_by_name=True)

    @model_validator(mode="after")
    def _stack_defaults_and_no_simulator_credentials_for_real_services(self) -> Settings:
        # Unset, the API and the simulator are the embedded stack's, wherever its ports are (ORDERFLOW_API_PORT
        # alone moves both the stack's API and where the CLI and the demo look for it).
        self.api_url = self.api_url or f"http://127.0.0.1:{self.api_port}"
        self.carrier_sim_url = self.carrier_sim_url or f"http://127.0.0.1:{self.simulator_port}"
        self.payment_provider_url = self.payment_provider_url or f"{self.carrier_sim_url.rstrip('/')}/pay"
        wrong = [
            credential
            for url_setting, credentials in _CREDENTIALS_BY_ENDPOINT.items()
            if not self._simulated(getattr(self, url_setting))
            for credential in credentials
            if str(getattr(self, credential)).startswith(SIMULATOR_CREDENTIAL_PREFIX)
        ]
        if wrong:
            names = ", ".join(f"ORDERFLOW_{name.upper()}" for name in wrong)
            raise ValueError(
                f"{names}: a carrier simulator credential cannot be used with a real service; set the real one"
            )
        return self

    def _simulated(self, url: str) -> bool:
        """An endpoint the simulator plays: none set (the simulator's route), the simulator, or this machine."""
        if not url or url.startswith(self.carrier_sim_url.rstrip("/")):
            return True
        return urlsplit(url).hostname in _LOOPBACK_HOSTS or (urlsplit(url).hostname or "").startswith("127.")

    def public_url(self, path: str) -> str:
        """An absolute link to one of our pages, for a notice: under public_api_url (else api_url)."""
        return (self.public_api_url or self.api_url).rstrip("/") + path

    def workflow_ui_url(self, workflow_id: str) -> str:
        """The workflow's page in the Temporal UI."""
        base = (self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}").rstrip("/")
        return f"{base}/namespaces/{quote(self.temporal_namespace)}/workflows/{quote(workflow_id)}"

    @property
    def policy(self) -> PolicySettings:
        return PolicySettings.model_validate({name: getattr(self, name) for name in PolicySettings.model_fields})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings from its environment (no files are read or written but `.env`)."""
    return Settings()
