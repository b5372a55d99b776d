"""Notice templates: Jinja2 in a sandbox, loaded from a YAML file ops can edit, checked in full at load.

Loading compiles every template, refuses variables outside VARIABLES, and trial-renders each one twice (with
SAMPLE_VARIABLES and with every variable empty), so a typo, a syntax error or a sandbox escape
(`{{ ''.__class__.__mro__ }}` → jinja2.sandbox.SecurityError) is a TemplateError when the worker starts,
not a failed notify activity in the middle of an order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, ValidationError

from workflows.contract import NoticeKind

# Every variable a template may use; activities/notify.py fills those it knows and "" for the rest.
SAMPLE_VARIABLES: dict[str, str] = {
    "order_no": "SO-20261122-0042",
    "kind": "dispatched",
    "customer_name": "Li Wei",
    "total": "1299.00",
    "currency": "CNY",
    "role": "finance",
    "level_role": "finance",
    "waited": "1 day, 0:00:00",
    "shortages": "SKU-1024 short 2, SKU-1031 short 5",
    "reason": "customer changed their mind",
    "carrier": "kuaidi100",
    "tracking_no": "SF1234567890123",
    "status": "DELIVERY_EXCEPTION",
    "signed_by": "Zhang San",
    "amount": "1299.00",  # a refund's amount (what is paid back; may be less than the order's total)
    # Links (services/links.py): in an approval request mailed to someone who may decide it, and in every
    # notice to a customer (their order's tracking page).
    "approve_url": "https://orderflow.example/console/approve/{approval_token}",
    "tracking_url": "https://orderflow.example/track/U08tMjAyNjExMjItMDA0MnwxNzk2MDAwMDAw.c2lnbmF0dXJl",
}
VARIABLES = frozenset(SAMPLE_VARIABLES)
# The kinds the order workflow sends: a templates file must have them all (others fall back).
REQUIRED_KINDS = frozenset(kind.value for kind in NoticeKind)
FIELDS = ("subject", "body", "sms")
SUBJECT_MAX = 200  # models.tables.Notification column sizes
TEXT_MAX = 4000


class TemplateError(ValueError):
    """A templates file that cannot be used; the message names the file, the kind and the template."""


class TemplateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    subject: str
    body: str
    sms: str


class TemplatesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fallback: TemplateSpec
    kinds: dict[str, TemplateSpec]


@dataclass(frozen=True)
class RenderedNotice:
    subject: str  # one line
    body: str  # e-mail body / in-app text
    sms: str

    def text_for(self, channel: str) -> str:
        return self.sms if channel == "sms" else self.body


@dataclass(frozen=True)
class _Compiled:
    subject: Template
    body: Template
    sms: Template


def _environment() -> ImmutableSandboxedEnvironment:
    # Plain text: no autoescape. StrictUndefined: an unknown name, and an attribute the sandbox hides, raise
    # instead of rendering as "" (the sandbox's refusal of `''.__class__` surfaces as SecurityError).
    return ImmutableSandboxedEnvironment(
        autoescape=False, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False
    )


class NoticeTemplates:
    """The compiled templates of one file; `render` never sees an unchecked template."""

    def __init__(self, source: str, kinds: Mapping[str, _Compiled], fallback: _Compiled) -> None:
        self.source = source
        self._kinds = dict(kinds)
        self._fallback = fallback

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._kinds)

    def render(self, kind: str, variables: Mapping[str, str]) -> RenderedNotice:
        """Render `kind` (or the fallback); variables outside VARIABLES are ignored, missing ones are ""."""
        compiled = self._kinds.get(kind, self._fallback)
        context = dict.fromkeys(VARIABLES, "")
        context.update((name, str(value)) for name, value in variables.items() if name in VARIABLES)
        context["kind"] = kind
        return _render(compiled, context, f"{self.source}: kind {kind!r}")


def _render(compiled: _Compiled, context: Mapping[str, str], where: str) -> RenderedNotice:
    parts: dict[str, str] = {}
    for name in FIELDS:
        try:
            parts[name] = getattr(compiled, name).render(context).strip()
        except JinjaTemplateError as exc:  # SecurityError and UndefinedError are TemplateErrors too
            raise TemplateError(f"{where}, {name}: {type(exc).__name__}: {exc}") from exc
    subject = " ".join(parts["subject"].split())  # a header: one line, whatever a variable holds
    return RenderedNotice(
        subject=_fit(subject, SUBJECT_MAX), body=_fit(parts["body"], TEXT_MAX), sms=_fit(parts["sms"], TEXT_MAX)
    )


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compile(env: ImmutableSandboxedEnvironment, spec: TemplateSpec, where: str) -> _Compiled:
    compiled: dict[str, Template] = {}
    for name in FIELDS:
        source = getattr(spec, name)
        try:
            unknown = meta.find_undeclared_variables(env.parse(source)) - VARIABLES - set(env.globals)
            compiled[name] = env.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"{where}, {name}, line {exc.lineno}: {type(exc).__name__}: {exc}") from exc
        except JinjaTemplateError as exc:
            raise TemplateError(f"{where}, {name}: {type(exc).__name__}: {exc}") from exc
        if unknown:
            known = ", ".join(sorted(VARIABLES))
            raise TemplateError(f"{where}, {name}: unknown variable(s) {', '.join(sorted(unknown))} (known: {known})")
    result = _Compiled(**compiled)
    # Trial renders: with every variable set, and with every variable empty (the other side of each {% if %}).
    _render(result, SAMPLE_VARIABLES, where)
    _render(result, dict.fromkeys(VARIABLES, ""), where + " (all variables empty)")
    return result


def parse_templates(text: str, source: str = "<templates>") -> NoticeTemplates:
    """Parse, compile and trial-render a templates document; TemplateError on any problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"cannot parse notice templates {source}: {exc}") from exc
    try:
        document = TemplatesFile.model_validate(raw)
    except ValidationError as exc:
        raise TemplateError(f"invalid notice templates {source}: {exc}") from exc
    missing = REQUIRED_KINDS - set(document.kinds)
    if missing:
        raise TemplateError(f"notice templates {source} lack the kind(s) {', '.join(sorted(missing))}")
    env = _environment()
    kinds = {kind: _compile(env, spec, f"{source}: kind {kind!r}") for kind, spec in document.kinds.items()}
    fallback = _compile(env, document.fallback, f"{source}: fallback")
    return NoticeTemplates(source, kinds, fallback)


def load_templates(path: Path) -> NoticeTemplates:
    """The templates file at `path`, checked; loaded again only when the file changes."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise TemplateError(f"cannot read notice templates file {path}: {exc}") from exc
    return _load(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load(path: Path, _mtime_ns: int, _size: int) -> NoticeTemplates:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read notice templates file {path}: {exc}") from exc
    return parse_templates(text, str(path))
