"""The server's access log without the link tokens: /console/approve/{token} and /track/{token} carry the
credential in the path (and the language switch carries the page's path in `back=`), so uvicorn's access lines
would put working links in every log file. They are logged with the token masked."""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
MASK = "***"
# The token after a link's prefix, written plainly or URL-encoded (the `back=` of the language switch).
_TOKEN = re.compile(r"((?:/|%2F)(?:track|console(?:/|%2F)approve)(?:/|%2F))[^/?&#\s\"]+", re.IGNORECASE)


def mask_tokens(text: str) -> str:
    return _TOKEN.sub(lambda m: m.group(1) + MASK, text)


class MaskLinkTokens(logging.Filter):
    """uvicorn logs `'%s - "%s %s HTTP/%s" %d'` with the path as an argument: the argument is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(mask_tokens(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = mask_tokens(record.msg)
        return True


def mask_link_tokens_in_access_log() -> None:
    """Install the filter once on uvicorn's access logger (whichever way the app is served)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, MaskLinkTokens) for f in logger.filters):
        logger.addFilter(MaskLinkTokens())
