"""docker-compose.yml cannot be run here (no Docker engine), so check what can drift from the code."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices

from core.config import PROJECT_ROOT, Settings
from dev.stack import SEARCH_ATTRIBUTES

COMPOSE = PROJECT_ROOT / "docker-compose.yml"


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def our_services() -> dict[str, dict[str, Any]]:
    """Services built from this repository, i.e. running our code."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", "NAME"]
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(name): str(value) for name, value in env.items()}


def accepted_env_names() -> set[str]:
    """Every environment name Settings reads (pydantic-settings matches them case-insensitively)."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def command_argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list), f"no command: {service}"
    return [str(part) for part in command]


def module_file(module: str, *, runnable: bool) -> Path | None:
    base = PROJECT_ROOT.joinpath(*module.split("."))
    candidates = [base.with_suffix(".py"), base / ("__main__.py" if runnable else "__init__.py")]
    return next((path for path in candidates if path.is_file()), None)


def code_target(argv: list[str]) -> tuple[str, Path | None, bool]:
    """(what the command names, the file that must exist, whether it must be runnable as a script)."""
    launcher = Path(argv[0]).name
    if launcher.startswith("python") and argv[1] == "-m":
        return argv[2], module_file(argv[2], runnable=True), True
    if launcher.startswith("python"):
        script = PROJECT_ROOT / argv[1]
        return argv[1], script if script.is_file() else None, True
    if launcher == "uvicorn":
        target = next(part for part in argv[1:] if not part.startswith("-"))  # module:attribute
        module, attribute = target.split(":", 1)
        found = module_file(module, runnable=False)
        if found is not None and "--factory" in argv and f"def {attribute}(" not in found.read_text():
            return target, None, False  # a factory that is not there
        return target, found, False
    raise AssertionError(f"unknown launcher {argv[0]!r}")


def test_our_services_run_code_that_exists() -> None:
    problems: list[str] = []
    checked = set()
    for name, service in our_services().items():
        target, path, runnable = code_target(command_argv(service))
        checked.add(name)
        if path is None:
            problems.append(f"{name}: {target} does not exist")
        elif runnable and path.name != "__main__.py" and '__name__ == "__main__"' not in path.read_text():
            problems.append(f"{name}: {target} does nothing when run")
    assert problems == []
    assert {"worker", "carrier-sim", "api"} <= checked


def test_our_services_only_receive_settings_names() -> None:
    accepted = accepted_env_names()
    unknown = {
        f"{name}: {variable}"
        for name, service in our_services().items()
        for variable in environment(service)
        if variable.upper() not in accepted
    }
    assert unknown == set()


def test_search_attributes_match_the_embedded_stack() -> None:
    registered = [
        dict(pair.split("=", 1) for pair in environment(service)["SEARCH_ATTRIBUTES"].split())
        for service in services().values()
        if "SEARCH_ATTRIBUTES" in environment(service)
    ]
    assert registered, "no service registers the search attributes"
    assert all(found == dict(SEARCH_ATTRIBUTES) for found in registered)


def test_shape() -> None:
    all_services = services()
    assert {"temporal-db", "temporal", "temporal-ui", "orderflow-db", "worker", "carrier-sim", "api"} <= set(
        all_services
    )
    worker = all_services["worker"]
    assert worker["deploy"]["replicas"] == 2
    env = environment(worker)
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["DATABASE_URL"].startswith("postgresql+psycopg2://")
    assert env["DATABASE_URL"].endswith("@orderflow-db:5432/orderflow")
    assert env["ORDERFLOW_CARRIER_SIM_URL"] == "http://carrier-sim:8081"
    for name, service in all_services.items():
        depends = service.get("depends_on") or []
        assert set(depends) <= set(all_services), f"{name} depends on a missing service"


def test_dockerfile_builds_from_the_lock_file() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile
