"""The floor: a bare workflow with OrderFulfillment's shape up to DISPATCHED, and nothing else.

Its input is a plan read off a real OrderFulfillment history (bench.pipeline builds it):

    "a"  a no-op REGULAR activity (sync function on a thread pool, same timeout and retry policy as _act)
    "s"  a search attribute upsert (OrderStatus), as each _transition does
    "u"  wait for the `proceed` update (the warehouse's `dispatched` update)
    "c"  start a child workflow that returns at once (ShipmentTracking's start; parent close: abandon)

The activity just before "u" tells the driver that the workflow now waits (one UDP datagram carrying the
workflow id to the driver's loopback port), as the PICKING row in the read model tells the pipeline's
driver; the driver then sends the update. So the floor has the pipeline's workflow-task structure around
the wait (the workflow goes idle, the update wakes it) without the database.

So the floor pays Temporal's cost of the same orchestration (workflow tasks, activity tasks, history,
visibility) with no database, no rules, no payload conversion of real contracts.

The worker runs in its own process:

    BENCH_FLOOR_NOTIFY=127.0.0.1:PORT python -m bench.floor --address 127.0.0.1:7233 --task-queue bench-floor
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

NOOP_ACTIVITY = "floor_noop"
STEP_ACTIVITY = "a"
STEP_UPSERT = "s"
STEP_UPDATE = "u"
STEP_CHILD = "c"
STEPS = (STEP_ACTIVITY, STEP_UPSERT, STEP_UPDATE, STEP_CHILD)

# The same as workflows.order.DB_RETRY / DB_TIMEOUT (copied, so the floor imports nothing of the app).
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
_TIMEOUT = timedelta(seconds=30)
_ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
NOTIFY_ENV = "BENCH_FLOOR_NOTIFY"  # host:port of the driver's UDP socket, set on the floor worker


@activity.defn(name=NOOP_ACTIVITY)
def noop(step: int, notify: str) -> int:
    """Nothing, except (when `notify` names a workflow) telling the driver that it reached the wait."""
    if notify:
        host, _, port = os.environ[NOTIFY_ENV].rpartition(":")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(notify.encode(), (host, int(port)))
    return step


@workflow.defn(name="FloorChild")
class FloorChild:
    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn(name="FloorWorkflow")
class FloorWorkflow:
    def __init__(self) -> None:
        self.proceed_requested = False
        self.proceeded = False

    @workflow.run
    async def run(self, plan: list[str]) -> int:
        done = 0
        for index, step in enumerate(plan):
            if step == STEP_ACTIVITY:
                announce = index + 1 < len(plan) and plan[index + 1] == STEP_UPDATE
                await workflow.execute_activity(
                    NOOP_ACTIVITY,
                    args=[index, workflow.info().workflow_id if announce else ""],
                    start_to_close_timeout=_TIMEOUT,
                    retry_policy=_RETRY,
                    result_type=int,
                )
            elif step == STEP_UPSERT:
                workflow.upsert_search_attributes([_ORDER_STATUS.value_set(f"FLOOR-{index}")])
            elif step == STEP_UPDATE:
                await workflow.wait_condition(lambda: self.proceed_requested)
                self.proceeded = True
            elif step == STEP_CHILD:
                await workflow.start_child_workflow(
                    FloorChild.run,
                    id=f"{workflow.info().workflow_id}-child-{index}",
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                )
            else:
                raise ValueError(f"unknown floor step {step!r}")
            done += 1
        return done

    @workflow.update
    async def proceed(self) -> bool:
        self.proceed_requested = True
        await workflow.wait_condition(lambda: self.proceeded)
        return True


async def _serve(address: str, task_queue: str, threads: int) -> None:
    import asyncio
    import signal
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=threads) as executor:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[FloorWorkflow, FloorChild],
            activities=[noop],
            activity_executor=executor,
            max_concurrent_activities=threads,
        )
        async with worker:
            print(f"floor worker started on {task_queue} ({threads} activity threads)", flush=True)
            await stop.wait()


def main() -> None:
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(description="The floor worker (bench.pipeline starts it)")
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--threads", type=int, default=16, help="activity threads = max concurrent activities")
    args = parser.parse_args()
    asyncio.run(_serve(args.address, args.task_queue, args.threads))


if __name__ == "__main__":
    main()
