"""Read-model queries, one module per view: what people and integrations see of orders, stock and customers.

Each takes an open session (the caller decides: `core.db.read_only` for a view, the activity's unit of work when a
step reads under its own locks). `availability` and `exposure` hold the one definition of available stock and of
credit exposure that every view and every step uses.
"""
