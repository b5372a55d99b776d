"""Every message key the console's templates and routes ask for exists, in both languages (a missing one would be a
500 on the page that asks for it)."""

from __future__ import annotations

import re
from pathlib import Path

from entrypoints.console import i18n

CONSOLE = Path(i18n.__file__).parent
# t("key") / t('key') in templates and code; also translator(...)("key") in the routes.
ASKED = re.compile(r"""(?:\bt|\))\(\s*["']([a-z0-9_]+)["']\s*\)""")


def test_every_key_asked_for_has_both_languages() -> None:
    asked: dict[str, str] = {}
    for path in [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("*.py")]:
        for key in ASKED.findall(path.read_text()):
            asked.setdefault(key, path.name)
    assert len(asked) > 100  # the pattern finds them
    messages = i18n._MESSAGES  # noqa: SLF001 — the table itself is what is checked
    missing = {key: where for key, where in asked.items() if key not in messages}
    assert not missing
    empty = [key for key, (en, zh) in messages.items() if not (en.strip() and zh.strip())]
    assert empty == ["pages_suffix"]  # "page 2 of 5" needs no suffix in English ("第 2 / 5 页" does)
