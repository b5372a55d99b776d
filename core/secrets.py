"""Secrets of the embedded stack: created once under the state directory (mode 0600), shared by every local
process (worker, API, CLI, tests of the stack), so nothing secret is a public default. Production passes them
in the environment instead (docker-compose.yml) and sets ORDERFLOW_LOCAL_SECRETS=false."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.config import Settings, get_settings

FILE_NAME = "secrets.json"


def generate() -> dict[str, Any]:
    key_id = "local-1"
    return {
        "decision_secret": secrets.token_urlsafe(32),
        "link_secret": secrets.token_urlsafe(32),
        "pii_key_id": key_id,
        "pii_keys": {key_id: base64.b64encode(secrets.token_bytes(32)).decode()},
        "channel_shopify_secret": secrets.token_urlsafe(32),
        "channel_taobao_secret": secrets.token_urlsafe(32),
        "channel_jd_secret": secrets.token_urlsafe(32),
        "automation_webhook_secret": secrets.token_urlsafe(32),
    }


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One process at a time creates or completes the file (API and worker often start together)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / f".{FILE_NAME}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(path: Path, values: dict[str, Any]) -> None:
    """Atomically: a crash leaves the old file or the new one, never a half-written or empty one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{FILE_NAME}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(values, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_create(state_dir: Path) -> dict[str, Any]:
    """The state directory's secrets, created on first use; a file from an older version gains the newer ones."""
    path = state_dir / FILE_NAME
    if path.exists():
        loaded: dict[str, Any] = json.loads(path.read_text())
        if generate().keys() <= loaded.keys():
            return loaded
    with _locked(state_dir):
        loaded = json.loads(path.read_text()) if path.exists() else {}
        missing = {name: value for name, value in generate().items() if name not in loaded}
        if missing:
            loaded.update(missing)
            _write(path, loaded)
    return loaded


def with_local_secrets(settings: Settings) -> Settings:
    """The start-up step that gives a process its secrets: those the environment left empty come from the state
    dir's secrets file (created on first use) unless `local_secrets` is false. Without local secrets, every
    secret must be given: a missing one is refused here, by name, rather than failing the first request."""
    missing = settings.missing_secrets()
    if not missing:
        return settings
    if not settings.local_secrets:
        names = ", ".join(f"ORDERFLOW_{name.upper()}" for name in missing)
        raise ValueError(f"{names} not set (ORDERFLOW_LOCAL_SECRETS is false: every secret comes from the environment)")
    stored = load_or_create(settings.state_dir)
    return settings.model_copy(update={name: stored[name] for name in missing})


@lru_cache(maxsize=1)
def runtime_settings() -> Settings:
    """What the worker, the API and the CLI run with: the environment's settings and their secrets."""
    return with_local_secrets(get_settings())
