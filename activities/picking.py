"""Pick lists per warehouse (lines in bin order) and their voiding on cancel."""

from __future__ import annotations

from dataclasses import asdict

from sqlmodel import col, select, update
from temporalio import activity

from activities.base import DbActivities
from domain.picking import pick_lists
from models.contracts import OrderRef, PickListsInput
from models.tables import Notification, PickList, User
from workflows.steps import PickingSteps


class PickingActivities(DbActivities, PickingSteps):
    @activity.defn
    def issue_pick_lists(self, inp: PickListsInput) -> list[str]:
        """One pick list per warehouse plus a task notice to the warehouse staff; returns warehouse codes."""
        plans = pick_lists(inp.allocations)
        with self.transaction(inp.order_no) as session:
            have = set(session.exec(select(PickList.warehouse).where(PickList.order_no == inp.order_no)).all())
            staff = session.exec(select(User.name).where(User.role == "warehouse")).all()
            for code, lines in plans.items():
                if code in have:
                    continue
                session.add(PickList(order_no=inp.order_no, warehouse=code, lines=[asdict(line) for line in lines]))
                body = f"Pick list for order {inp.order_no} at {code}: " + "; ".join(
                    f"{line.bin} {line.sku} lot {line.lot} x{line.qty}" for line in lines
                )
                for name in staff:
                    session.add(
                        Notification(
                            key=f"{inp.order_no}:pick:{code}:{name}",
                            order_no=inp.order_no,
                            kind="pick_task",
                            channel="internal",
                            recipient=name,
                            body=body,
                        )
                    )
        return sorted(plans)

    @activity.defn
    def void_pick_lists(self, inp: OrderRef) -> int:
        with self.transaction(inp.order_no) as session:
            result = session.exec(
                update(PickList)
                .where(col(PickList.order_no) == inp.order_no, col(PickList.state) == "issued")
                .values(state="voided")
            )
            return int(result.rowcount or 0)
