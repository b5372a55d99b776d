"""One settings object, read from the environment (and `.env` when present)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything configurable. Names without the ORDERFLOW_ prefix are the CONTRACT's public ones."""

    model_config = SettingsConfigDict(env_prefix="ORDERFLOW_", env_file=".env", extra="ignore")

    temporal_address: str = Field(
        "localhost:7233", validation_alias=AliasChoices("TEMPORAL_ADDRESS", "ORDERFLOW_TEMPORAL_ADDRESS")
    )
    temporal_namespace: str = Field(
        "default", validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "ORDERFLOW_TEMPORAL_NAMESPACE")
    )
    database_url: str = Field("", validation_alias=AliasChoices("DATABASE_URL", "ORDERFLOW_DATABASE_URL"))
    api_url: str = Field("http://127.0.0.1:8000", validation_alias=AliasChoices("ORDERFLOW_API", "ORDERFLOW_API_URL"))

    state_dir: Path = PROJECT_ROOT / ".orderflow"
    task_queue: str = "orderflow"
    rules_file: Path = PROJECT_ROOT / "rules" / "default_rules.yaml"

    # Embedded stack ports (make up / make demo).
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    simulator_port: int = 8081
    smtp_sink_port: int = 8025  # the embedded stack's loopback mail sink (served by the simulator process)
    api_port: int = 8000

    # Carriers: base URL of the carrier simulator (carrier code `sim`).
    carrier_sim_url: str = "http://127.0.0.1:8081"
    # Seconds between status steps of a simulated parcel: a parcel is signed for ~5 steps after dispatch.
    simulator_step_seconds: float = 3.0
    # Carrier aggregators (carrier codes `kuaidi100`, `17track`, `aftership`). An empty URL means the carrier
    # simulator's route for that API under carrier_sim_url (/kuaidi100, /track17/track/v2.2, /aftership/v4).
    # The credential defaults are the simulator's; real ones come from the environment.
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

    # Business policy handed to each workflow by the review activity (so workflows stay deterministic).
    price_tolerance: Decimal = Decimal("0.05")
    allow_split_shipments: bool = True
    lot_order: Literal["fifo", "fefo"] = "fifo"  # default; review rules may choose per order
    approval_reminder: timedelta = timedelta(days=1)
    approval_deadline: timedelta = timedelta(days=3)
    payment_deadline: timedelta = timedelta(days=3)
    backorder_recheck: timedelta = timedelta(hours=6)
    backorder_deadline: timedelta = timedelta(days=14)
    tracking_poll_interval: timedelta = timedelta(hours=1)
    tracking_stall_after: timedelta = timedelta(days=3)  # no carrier news this long: DELIVERY_EXCEPTION + ops
    tracking_give_up_after: timedelta = timedelta(days=30)  # no news this long: the parcel is EXPIRED
    # Carriers polled in batches by one CarrierPoller per carrier (their batch query, e.g. 40 numbers a call)
    # instead of one poll per parcel. Only carriers with a batch API count; [] turns batching off.
    tracking_batch_carriers: list[str] = ["17track"]
    # Where carriers reach our webhooks (the API's public base URL). Set: parcels of carriers that take a
    # per-parcel callback (Kuaidi100) are subscribed at dispatch, so news is pushed; polling stays as backstop.
    public_api_url: str = ""

    worker_activity_threads: int = 16

    # Notifications (integrations/notify): each worker's outbox relay sends queued notices every
    # notify_relay_interval seconds: e-mail over SMTP, SMS through an HTTP gateway (MessageBird's API shape; the
    # carrier simulator serves one under /sms). An empty smtp_host or sms_gateway_url leaves that channel
    # unconfigured: its notices stay in the outbox as 'unsent', never 'sent', until it is configured.
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

    # Secrets. Empty ones are filled from state_dir/secrets.json (created on first use) unless
    # local_secrets is false (production: every one comes from the environment, see docker-compose.yml).
    local_secrets: bool = True
    # HMAC key the API (and CLI) sign approvers' decisions with; the order workflow's update validator refuses
    # a decision without a valid signature, so nobody can approve around the API by talking to Temporal.
    decision_secret: str = ""
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

    @model_validator(mode="after")
    def _fill_local_secrets(self) -> Settings:
        names = (
            "decision_secret",
            "pii_keys",
            "pii_key_id",
            "channel_shopify_secret",
            "channel_taobao_secret",
            "channel_jd_secret",
        )
        if self.local_secrets and any(not getattr(self, name) for name in names):
            from core.secrets import load_or_create

            stored = load_or_create(self.state_dir)
            for name in names:
                if not getattr(self, name):
                    object.__setattr__(self, name, stored[name])
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.state_dir / 'orderflow.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
