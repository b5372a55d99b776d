"""The embedded stack's secrets file: one set for every process, private, completed but never changed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT, Settings
from core.secrets import FILE_NAME, generate, load_or_create, with_local_secrets


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


def test_the_start_up_step_fills_only_what_the_environment_left_empty(tmp_path: Path) -> None:
    given = Settings.model_validate({"state_dir": tmp_path, "decision_secret": "from-env"})
    assert given.pii_key_id == "" and not (tmp_path / FILE_NAME).exists()  # building settings touches no file
    settings = with_local_secrets(given)
    assert settings.decision_secret == "from-env" and settings.pii_key_id == "local-1"
    assert json.loads((tmp_path / FILE_NAME).read_text())["pii_key_id"] == "local-1"


def test_without_local_secrets_a_missing_secret_is_refused_by_name(tmp_path: Path) -> None:
    off = Settings.model_validate({"state_dir": tmp_path / "none", "local_secrets": False, "decision_secret": "x"})
    with pytest.raises(ValueError, match="ORDERFLOW_PII_KEYS, ORDERFLOW_PII_KEY_ID"):
        with_local_secrets(off)
    assert not (tmp_path / "none").exists()


def test_importing_the_api_and_building_settings_create_no_secrets_file(tmp_path: Path) -> None:
    code = "import entrypoints.api.app, core.config; core.config.Settings()"
    env = {**os.environ, "ORDERFLOW_STATE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, check=True, timeout=60)
    assert list(tmp_path.iterdir()) == []
