"""Secrets of the embedded stack: created once under the state directory (mode 0600), shared by every local
process (worker, API, CLI, tests of the stack), so nothing secret is a public default. Production passes them
in the environment instead (docker-compose.yml) and sets ORDERFLOW_LOCAL_SECRETS=false."""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

FILE_NAME = "secrets.json"


def generate() -> dict[str, Any]:
    key_id = "local-1"
    return {
        "decision_secret": secrets.token_urlsafe(32),
        "pii_key_id": key_id,
        "pii_keys": {key_id: base64.b64encode(secrets.token_bytes(32)).decode()},
        "channel_shopify_secret": secrets.token_urlsafe(32),
        "channel_taobao_secret": secrets.token_urlsafe(32),
        "channel_jd_secret": secrets.token_urlsafe(32),
    }


def load_or_create(state_dir: Path) -> dict[str, Any]:
    """The state directory's secrets; created atomically on first use (a concurrent first use keeps one)."""
    path = state_dir / FILE_NAME
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fresh = state_dir / f".{FILE_NAME}.{os.getpid()}"
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(generate(), out, indent=2)
        try:
            os.link(fresh, path)  # fails if another process got there first: theirs wins
        except FileExistsError:
            pass
        finally:
            fresh.unlink()
    loaded: dict[str, Any] = json.loads(path.read_text())
    # Files written by an older version may lack newer secrets: add them, keep the rest.
    missing = {name: value for name, value in generate().items() if name not in loaded}
    if missing:
        loaded.update(missing)
        path.write_text(json.dumps(loaded, indent=2))
    return loaded
