"""domain.picking (walking order per warehouse), domain.approvals (who may decide), domain.tracking (progress)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.approvals import refusal_reason
from domain.picking import PickLine, bin_path_key, pick_lists
from domain.tracking import (
    EXCEPTION_STATUSES,
    FINAL_TRACKING_STATUSES,
    PROGRESS_RANK,
    TROUBLE_STATUSES,
    is_newer,
    next_status,
    order_status_for,
)
from models.allocation import Allocation
from models.status import OrderStatus, Role, TrackingStatus

# --- picking -------------------------------------------------------------------------------------


def alloc(
    warehouse: str, bin_code: str, sku: str = "SKU-1", lot: str = "L1", qty: int = 1, line_no: int = 1
) -> Allocation:
    return Allocation(line_no=line_no, sku=sku, warehouse=warehouse, lot_id=1, lot=lot, bin=bin_code, qty=qty)


class TestBinOrder:
    def test_numbers_compare_as_numbers(self) -> None:
        assert bin_path_key("A-2") < bin_path_key("A-10")
        assert bin_path_key("A-02-10") < bin_path_key("A-10-01")
        assert bin_path_key("A-9-99") < bin_path_key("A-10-1")

    def test_letters_compare_as_letters(self) -> None:
        assert bin_path_key("A-10") < bin_path_key("B-1")
        assert bin_path_key("AA-1") > bin_path_key("A-1")

    def test_leading_zeros_do_not_matter_for_order(self) -> None:
        assert not bin_path_key("A-02") < bin_path_key("A-2")
        assert not bin_path_key("A-2") < bin_path_key("A-02")

    def test_a_shorter_path_comes_before_its_extensions(self) -> None:
        assert bin_path_key("A-2") < bin_path_key("A-2-1")

    def test_sorting_a_shelf(self) -> None:
        bins = ["A-10", "B-1", "A-2", "A-1-3", "A-1", "A-1-10", "A-100"]
        assert sorted(bins, key=bin_path_key) == ["A-1", "A-1-3", "A-1-10", "A-2", "A-10", "A-100", "B-1"]

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=12))
    @example("A-1²")  # superscript two: a digit to str.isdigit(), not a decimal digit to int()
    @example("²")
    def test_any_bin_code_has_a_key(self, code: str) -> None:
        # Bin codes are typed in by people: no input may crash the pick list.
        key = bin_path_key(code)
        assert key == bin_path_key(code)
        sorted([code, "A-1", "10", ""], key=bin_path_key)

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(st.sampled_from("ABC"), st.integers(0, 120), st.integers(0, 120)),
            min_size=1,
            max_size=8,
        )
    )
    def test_natural_order_matches_numeric_tuples(self, parts: list[tuple[str, int, int]]) -> None:
        codes = [f"{aisle}-{bay}-{level}" for aisle, bay, level in parts]
        expected = sorted(parts)
        assert [bin_path_key(c) for c in sorted(codes, key=bin_path_key)] == [
            bin_path_key(f"{a}-{b}-{lv}") for a, b, lv in expected
        ]


class TestPickLists:
    def test_one_list_per_warehouse_in_walking_order(self) -> None:
        allocations = [
            alloc("WH-SH", "A-10", sku="SKU-1", line_no=1, qty=3),
            alloc("WH-BJ", "C-1", sku="SKU-2", line_no=2, qty=1),
            alloc("WH-SH", "A-2", sku="SKU-3", line_no=3, qty=2),
            alloc("WH-SH", "A-2-1", sku="SKU-4", line_no=4, qty=5),
        ]
        lists = pick_lists(allocations)
        assert list(lists) == ["WH-BJ", "WH-SH"]
        assert lists["WH-BJ"] == [PickLine("C-1", "SKU-2", "L1", 1, 2)]
        assert lists["WH-SH"] == [
            PickLine("A-2", "SKU-3", "L1", 2, 3),
            PickLine("A-2-1", "SKU-4", "L1", 5, 4),
            PickLine("A-10", "SKU-1", "L1", 3, 1),
        ]

    def test_same_bin_orders_by_sku_then_lot(self) -> None:
        allocations = [
            alloc("WH", "A-1", sku="SKU-2", lot="L1"),
            alloc("WH", "A-1", sku="SKU-1", lot="L2"),
            alloc("WH", "A-1", sku="SKU-1", lot="L1"),
        ]
        assert [(p.sku, p.lot) for p in pick_lists(allocations)["WH"]] == [
            ("SKU-1", "L1"),
            ("SKU-1", "L2"),
            ("SKU-2", "L1"),
        ]

    def test_every_allocation_becomes_exactly_one_pick_line(self) -> None:
        # Two lines of the same SKU from the same lot stay two pick lines (each line is confirmed on its own).
        allocations = [alloc("WH", "A-1", qty=2, line_no=1), alloc("WH", "A-1", qty=3, line_no=2)]
        lines = pick_lists(allocations)["WH"]
        assert sorted((p.line_no, p.qty) for p in lines) == [(1, 2), (2, 3)]

    def test_no_allocations_no_lists(self) -> None:
        assert pick_lists([]) == {}


# --- approvals -----------------------------------------------------------------------------------


def why(level: Role, decider: str, role: str, *, rep: str = "alice", earlier: list[str] | None = None) -> str | None:
    return refusal_reason(
        level_role=level, decider=decider, decider_role=role, sales_rep=rep, earlier_deciders=earlier or []
    )


class TestApprovals:
    def test_finance_decides_finance(self) -> None:
        assert why(Role.FINANCE, "fiona", "finance") is None

    def test_director_decides_director(self) -> None:
        assert why(Role.FINANCE_DIRECTOR, "derek", "finance_director") is None

    def test_director_may_decide_the_finance_level(self) -> None:
        assert why(Role.FINANCE, "derek", "finance_director") is None

    def test_finance_may_not_decide_the_director_level(self) -> None:
        reason = why(Role.FINANCE_DIRECTOR, "fiona", "finance")
        assert reason is not None
        assert "finance cannot decide the finance_director level" in reason

    @pytest.mark.parametrize("role", ["sales", "warehouse", "ops", "admin", "", "FINANCE"])
    def test_wrong_role_is_refused(self, role: str) -> None:
        reason = why(Role.FINANCE, "someone", role)
        assert reason is not None
        assert f"role {role} cannot decide the finance level" in reason
        assert "needs finance, finance_director" in reason

    def test_ops_level_needs_ops(self) -> None:
        assert why(Role.OPS, "olga", "ops") is None
        assert why(Role.OPS, "fiona", "finance") is not None

    def test_own_sales_rep_is_refused_whatever_the_role(self) -> None:
        reason = why(Role.FINANCE, "alice", "finance", rep="alice")
        assert reason is not None
        assert "own sales rep" in reason
        assert why(Role.FINANCE_DIRECTOR, "derek", "finance_director", rep="derek") is not None

    def test_four_eyes_same_person_cannot_decide_two_levels(self) -> None:
        reason = why(Role.FINANCE_DIRECTOR, "derek", "finance_director", earlier=["derek"])
        assert reason is not None
        assert "four-eyes" in reason
        assert why(Role.FINANCE_DIRECTOR, "derek", "finance_director", earlier=["fiona"]) is None


# --- tracking ------------------------------------------------------------------------------------

NOT_FINAL = [status for status in TrackingStatus if status not in FINAL_TRACKING_STATUSES]
ALL_STATUSES = list(TrackingStatus)
HEALTHY = [s for s in TrackingStatus if s not in EXCEPTION_STATUSES]


class TestOrderStatusFor:
    def test_no_parcels_yet(self) -> None:
        assert order_status_for([]) == OrderStatus.DISPATCHED

    @pytest.mark.parametrize(
        ("parcel", "expected"),
        [
            (TrackingStatus.PENDING, OrderStatus.DISPATCHED),
            (TrackingStatus.INFO_RECEIVED, OrderStatus.DISPATCHED),
            (TrackingStatus.PICKED_UP, OrderStatus.IN_TRANSIT),
            (TrackingStatus.IN_TRANSIT, OrderStatus.IN_TRANSIT),
            (TrackingStatus.OUT_FOR_DELIVERY, OrderStatus.OUT_FOR_DELIVERY),
            (TrackingStatus.AVAILABLE_FOR_PICKUP, OrderStatus.OUT_FOR_DELIVERY),
            (TrackingStatus.DELIVERED, OrderStatus.DELIVERED),
        ],
    )
    def test_single_parcel(self, parcel: TrackingStatus, expected: OrderStatus) -> None:
        assert order_status_for([parcel]) == expected

    def test_least_advanced_parcel_decides(self) -> None:
        assert order_status_for([TrackingStatus.DELIVERED, TrackingStatus.IN_TRANSIT]) == OrderStatus.IN_TRANSIT
        assert (
            order_status_for([TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.DELIVERED, TrackingStatus.PENDING])
            == OrderStatus.DISPATCHED
        )
        assert order_status_for([TrackingStatus.DELIVERED, TrackingStatus.DELIVERED]) == OrderStatus.DELIVERED

    @pytest.mark.parametrize("trouble", sorted(EXCEPTION_STATUSES))
    def test_any_exception_dominates(self, trouble: TrackingStatus) -> None:
        assert order_status_for([TrackingStatus.DELIVERED, trouble]) == OrderStatus.DELIVERY_EXCEPTION
        assert order_status_for([trouble, TrackingStatus.PENDING]) == OrderStatus.DELIVERY_EXCEPTION
        assert order_status_for([trouble]) == OrderStatus.DELIVERY_EXCEPTION

    def test_exception_statuses_are_the_troubled_ones(self) -> None:
        assert EXCEPTION_STATUSES == {
            TrackingStatus.ATTEMPT_FAILED,
            TrackingStatus.EXCEPTION,
            TrackingStatus.REFUSED,
            TrackingStatus.RETURNING,
            TrackingStatus.RETURNED,
            TrackingStatus.EXPIRED,
        }

    def test_accepts_any_iterable_once(self) -> None:
        statuses = (s for s in [TrackingStatus.DELIVERED, TrackingStatus.OUT_FOR_DELIVERY])
        assert order_status_for(statuses) == OrderStatus.OUT_FOR_DELIVERY

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.sampled_from(ALL_STATUSES), min_size=1, max_size=6))
    def test_every_combination_has_a_status(self, parcels: list[TrackingStatus]) -> None:
        status = order_status_for(parcels)
        if any(p in EXCEPTION_STATUSES for p in parcels):
            assert status == OrderStatus.DELIVERY_EXCEPTION
        else:
            # No parcel is behind the order: the order's status is one some parcel maps to, and the slowest.
            singles = [order_status_for([p]) for p in parcels]
            assert status in singles
            assert status == order_status_for([min(parcels, key=lambda p: PROGRESS_RANK[p])])


class TestIsNewer:
    def test_forward_moves_count(self) -> None:
        assert is_newer(TrackingStatus.PENDING, TrackingStatus.IN_TRANSIT)
        assert is_newer(TrackingStatus.IN_TRANSIT, TrackingStatus.OUT_FOR_DELIVERY)
        assert is_newer(TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.DELIVERED)

    def test_backward_moves_do_not(self) -> None:
        assert not is_newer(TrackingStatus.DELIVERED, TrackingStatus.IN_TRANSIT)
        assert not is_newer(TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.PICKED_UP)
        assert not is_newer(TrackingStatus.IN_TRANSIT, TrackingStatus.INFO_RECEIVED)

    def test_repeat_is_not_news(self) -> None:
        for status in TrackingStatus:
            assert not is_newer(status, status)

    def test_exception_and_recovery_at_the_same_stage(self) -> None:
        assert is_newer(TrackingStatus.IN_TRANSIT, TrackingStatus.EXCEPTION)
        assert is_newer(TrackingStatus.EXCEPTION, TrackingStatus.IN_TRANSIT)
        assert is_newer(TrackingStatus.ATTEMPT_FAILED, TrackingStatus.OUT_FOR_DELIVERY)
        assert not is_newer(TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.PICKED_UP)

    def test_every_status_is_ranked(self) -> None:
        assert set(PROGRESS_RANK) == set(TrackingStatus)

    def test_trouble_at_the_door_is_news(self) -> None:
        # A failed attempt or a refusal comes after OUT_FOR_DELIVERY: it must not be taken for a stale scan.
        assert is_newer(TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.ATTEMPT_FAILED)
        assert is_newer(TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.REFUSED)
        assert is_newer(TrackingStatus.REFUSED, TrackingStatus.RETURNING)
        assert is_newer(TrackingStatus.RETURNING, TrackingStatus.RETURNED)
        assert not is_newer(TrackingStatus.RETURNING, TrackingStatus.IN_TRANSIT)  # still on its way back
        assert not is_newer(TrackingStatus.ATTEMPT_FAILED, TrackingStatus.PICKED_UP)

    def test_plain_progress_never_moves_back(self) -> None:
        plain = set(TrackingStatus) - TROUBLE_STATUSES - FINAL_TRACKING_STATUSES
        backwards = [(c, k) for c in plain for k in plain if PROGRESS_RANK[k] < PROGRESS_RANK[c]]
        assert len(backwards) >= 10  # every backwards step there is, not a sample that may miss them
        for current, candidate in backwards:
            assert next_status(current, candidate) is None, (current, candidate)

    def test_a_final_status_never_moves(self) -> None:
        for current in FINAL_TRACKING_STATUSES:
            for candidate in TrackingStatus:
                assert next_status(current, candidate) is None, (current, candidate)

    def test_a_late_trouble_report_does_not_undo_a_later_delivery_run(self) -> None:
        noon, later = datetime(2026, 11, 20, 12, tzinfo=UTC), datetime(2026, 11, 21, 9, tzinfo=UTC)
        # The attempt failed at noon; the next day's run (09:00) was taken; the noon report arrives again.
        late = next_status(
            TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.ATTEMPT_FAILED, last_event_at=later, candidate_at=noon
        )
        assert late is None
        fresh = next_status(
            TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.ATTEMPT_FAILED, last_event_at=noon, candidate_at=later
        )
        assert fresh == TrackingStatus.ATTEMPT_FAILED

    def test_a_refused_parcel_only_goes_home(self) -> None:
        assert next_status(TrackingStatus.REFUSED, TrackingStatus.OUT_FOR_DELIVERY) is None
        assert next_status(TrackingStatus.REFUSED, TrackingStatus.IN_TRANSIT) is None
        assert next_status(TrackingStatus.REFUSED, TrackingStatus.RETURNING) == TrackingStatus.RETURNING
        # "Delivered" on the way back is the sender signing for the return.
        assert next_status(TrackingStatus.RETURNING, TrackingStatus.DELIVERED) == TrackingStatus.RETURNED
        assert next_status(TrackingStatus.REFUSED, TrackingStatus.DELIVERED) == TrackingStatus.RETURNED

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(st.tuples(st.sampled_from(NOT_FINAL), st.integers(0, 50)), max_size=12),
        st.sampled_from([TrackingStatus.REFUSED, TrackingStatus.RETURNING]),
        st.lists(st.tuples(st.sampled_from(ALL_STATUSES), st.integers(0, 120)), max_size=25),
    )
    def test_a_stream_of_carrier_reports_never_delivers_a_parcel_that_went_home(
        self,
        before: list[tuple[TrackingStatus, int]],
        homeward: TrackingStatus,
        after: list[tuple[TrackingStatus, int]],
    ) -> None:
        # Out-of-order, repeated reports folded the way the tracking workflow does. The parcel is sent home by a
        # report newer than everything before it, so every example exercises what happens after.
        start = datetime(2026, 11, 20, tzinfo=UTC)
        current, last_at = TrackingStatus.PENDING, None
        went_home = False
        for status, hour in [*before, (homeward, 60), *after]:
            at = start + timedelta(hours=hour)
            moved = next_status(current, status, last_event_at=last_at, candidate_at=at)
            if moved is None:
                continue
            assert current not in FINAL_TRACKING_STATUSES, "a final status moved"
            current, last_at = moved, max(last_at, at) if last_at else at
            went_home = went_home or current in (TrackingStatus.REFUSED, TrackingStatus.RETURNING)
        assert went_home  # nothing before it is final, and the homeward report is the newest yet
        assert current in (TrackingStatus.REFUSED, TrackingStatus.RETURNING, TrackingStatus.RETURNED), current

    def test_a_substitute_takes_the_absent_approvers_role_and_both_keep_four_eyes(self) -> None:
        def for_fiona(decider: str, *, rep: str = "alice", earlier: list[str] | None = None) -> str | None:
            return refusal_reason(
                level_role=Role.FINANCE,
                decider=decider,
                decider_role="finance",  # fiona's role, which the API signs for her substitute
                sales_rep=rep,
                earlier_deciders=earlier or [],
                on_behalf_of="fiona",
            )

        assert for_fiona("olga") is None
        assert "olga is the order's own sales rep" in (for_fiona("olga", rep="olga") or "")
        assert "fiona is the order's own sales rep" in (for_fiona("olga", rep="fiona") or "")
        assert "fiona already decided an earlier level" in (for_fiona("olga", earlier=["fiona"]) or "")
        assert "olga already decided an earlier level" in (for_fiona("olga", earlier=["olga"]) or "")
