"""Register the custom search attributes on a server that does not have them yet (test servers, fresh
namespaces). The embedded stack registers them at start-up with --search-attribute instead."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows import contract


async def register_search_attributes(client: Client) -> None:
    wanted = {key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in contract.SEARCH_ATTRIBUTES}
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=wanted)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise
