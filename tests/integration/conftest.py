"""Fixtures for the integration tests beyond tests/conftest.py: the notify channels' far ends on loopback."""

from tests.support.notify_peers import sms_gateway, sms_gateway_server, smtp_sink  # noqa: F401  (fixtures)
