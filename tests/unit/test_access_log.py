"""The access log masks the link tokens (entrypoints/api/access_log.py), on uvicorn's own log records."""

from __future__ import annotations

import logging

from entrypoints.api.access_log import ACCESS_LOGGER, MaskLinkTokens, mask_link_tokens_in_access_log, mask_tokens

TOKEN = "T0k3n-_abc.DEF"


def access_record(path: str) -> logging.LogRecord:
    """What uvicorn's httptools/h11 protocols log for a request."""
    return logging.LogRecord(
        ACCESS_LOGGER,
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )


def test_tokens_in_link_paths_and_in_the_language_switch_are_masked() -> None:
    cases = {
        f"/track/{TOKEN}": "/track/***",
        f"/console/approve/{TOKEN}": "/console/approve/***",
        f"/console/approve/{TOKEN}?x=1": "/console/approve/***?x=1",
        f"/console/language?to=zh-CN&back=%2Ftrack%2F{TOKEN}": "/console/language?to=zh-CN&back=%2Ftrack%2F***",
        f"/console/language?to=en&back=/console/approve/{TOKEN}": "/console/language?to=en&back=/console/approve/***",
        "/console/orders/ORD-1": "/console/orders/ORD-1",  # other pages as they were
        "/console/approvals/ORD-1": "/console/approvals/ORD-1",
    }
    for path, logged in cases.items():
        record = access_record(path)
        assert MaskLinkTokens().filter(record)
        assert record.getMessage() == f'127.0.0.1:5000 - "GET {logged} HTTP/1.1" 200'
    assert TOKEN not in mask_tokens(f"GET /track/{TOKEN}")


def test_the_filter_is_installed_once() -> None:
    mask_link_tokens_in_access_log()
    mask_link_tokens_in_access_log()
    assert sum(isinstance(f, MaskLinkTokens) for f in logging.getLogger(ACCESS_LOGGER).filters) == 1
