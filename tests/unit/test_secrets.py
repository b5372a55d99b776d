"""The embedded stack's secrets file: one set for every process, private, completed but never changed."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from core.config import Settings
from core.secrets import FILE_NAME, generate, load_or_create


def test_processes_starting_together_share_one_set_and_the_file_is_private(tmp_path: Path) -> None:
    with ProcessPoolExecutor(4) as pool:
        sets = list(pool.map(load_or_create, [tmp_path] * 12))
    assert len({json.dumps(found, sort_keys=True) for found in sets}) == 1
    assert stat.S_IMODE((tmp_path / FILE_NAME).stat().st_mode) == 0o600


def test_an_older_file_gains_new_secrets_and_keeps_its_own(tmp_path: Path) -> None:
    old = {"decision_secret": "kept", "pii_key_id": "k0", "pii_keys": {"k0": generate()["pii_keys"]["local-1"]}}
    (tmp_path / FILE_NAME).write_text(json.dumps(old))
    found = load_or_create(tmp_path)
    assert {name: found[name] for name in old} == old
    assert found.keys() == generate().keys()


def test_settings_fill_only_what_the_environment_left_empty(tmp_path: Path) -> None:
    settings = Settings.model_validate({"state_dir": tmp_path, "decision_secret": "from-env"})
    assert settings.decision_secret == "from-env" and settings.pii_key_id == "local-1"
    off = Settings.model_validate({"state_dir": tmp_path / "none", "local_secrets": False})
    assert off.decision_secret == "" and not (tmp_path / "none").exists()
