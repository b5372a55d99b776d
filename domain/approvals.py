"""Who may decide which approval level: pure checks shared by the workflow's update validator."""

from __future__ import annotations

from models.status import Role

# A senior role may decide a junior finance level; nobody decides above their role.
DECIDERS: dict[Role, frozenset[Role]] = {
    Role.FINANCE: frozenset({Role.FINANCE, Role.FINANCE_DIRECTOR}),
    Role.FINANCE_DIRECTOR: frozenset({Role.FINANCE_DIRECTOR}),
    Role.OPS: frozenset({Role.OPS}),
    Role.SALES: frozenset({Role.SALES}),
    Role.WAREHOUSE: frozenset({Role.WAREHOUSE}),
}


def may_decide(decider_role: str, level_role: str) -> bool:
    """Whether a person holding `decider_role` may decide a level of `level_role` at all."""
    try:
        allowed = DECIDERS.get(Role(level_role), frozenset({Role(level_role)}))
    except ValueError:  # not a role
        return False
    return decider_role in allowed


def refusal_reason(
    *,
    level_role: Role,
    decider: str,
    decider_role: str,
    sales_rep: str,
    earlier_deciders: list[str],
    on_behalf_of: str = "",
) -> str | None:
    """Why this person may not decide this level, or None when they may. A substitute decides with the absent
    approver's role (`decider_role`); the rules hold for both of them: neither may be the order's sales rep, nor
    have decided an earlier level (a substitute's decision counts for both)."""
    for person in (decider, on_behalf_of) if on_behalf_of else (decider,):
        if person == sales_rep:
            return f"{person} is the order's own sales rep and cannot approve it"
        if person in earlier_deciders:
            return f"{person} already decided an earlier level of this order (four-eyes rule)"
    if not may_decide(decider_role, level_role):
        allowed = DECIDERS.get(level_role, frozenset({level_role}))
        names = ", ".join(sorted(role.value for role in allowed))
        return f"role {decider_role} cannot decide the {level_role.value} level (needs {names})"
    return None
