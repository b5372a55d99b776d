"""Custom search attributes (registered by the embedded stack and the test servers). No PII here."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
CHANNEL = SearchAttributeKey.for_keyword("Channel")
ORDER_TOTAL = SearchAttributeKey.for_float("OrderTotal")

ALL = (ORDER_STATUS, CUSTOMER_ID, CHANNEL, ORDER_TOTAL)
