"""The automation bench's pooling of its rounds (bench/automations.py): the verdict is over every order of a mode."""

from __future__ import annotations

from typing import Any

from bench.automations import pooled


def a_round(latencies: list[float], wall: float, worker_cpu: float, runs: int | None = None) -> dict[str, Any]:
    measured: dict[str, Any] = {
        "_allocated_s": latencies,
        "_dispatched_s": [2 * s for s in latencies],
        "orders": len(latencies),
        "wall_s": wall,
        "orders_per_s": round(len(latencies) / wall, 2),
        "cpu": {"process_cpu_s": {"worker": worker_cpu, "temporal": 1.0}},
    }
    if runs is not None:
        measured["automation"] = {"runs": runs, "states": {"completed": runs}, "event_to_run_ms": {"p50": 1.0}}
    return measured


def test_rounds_pool_into_one_figure_per_mode() -> None:
    first = a_round([1.0] * 99 + [9.0], wall=10.0, worker_cpu=2.0, runs=300)
    second = a_round([2.0] * 100, wall=30.0, worker_cpu=4.0, runs=250)
    mode = pooled([first, second])
    # p99 of the 200 orders: the 198th fastest is a 2.0 s order (the single 9.0 s one is above the 99th percentile)
    assert mode["intake_to_allocated_ms"]["p99"] == 2000.0 and mode["intake_to_allocated_ms"]["max"] == 9000.0
    assert mode["orders"] == 200 and mode["orders_per_s"] == 5.0  # 200 orders in 40 s, not the mean of 10 and 3.33
    # (2 + 4) s of worker and (1 + 1) s of server over 200 orders
    assert mode["cpu_ms_per_order"] == {"worker": 30.0, "temporal": 10.0, "bench_total": 40.0}
    assert mode["automation"]["runs"] == 550 and mode["automation"]["states"] == {"completed": 550}
    assert mode["firings_per_order"] == 2.75
    assert [r["orders"] for r in mode["rounds"]] == [100, 100]
    assert all("_allocated_s" not in r for r in mode["rounds"])  # raw latencies are not printed
