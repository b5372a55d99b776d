"""Journeys per parcel on the carrier simulator: the presets and explicit steps, walked through the four real
client adapters (sim, Kuaidi100, 17TRACK, AfterShip) against the simulator app, in query and time mode."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import httpx
import pytest
from fastapi import FastAPI

from core.config import Settings
from dev.simulator.carriers import (
    CARRIER_WORDS,
    HAPPY,
    JOURNEY_STATUSES,
    JOURNEYS,
    STALL_HOLD,
    STEPS,
    JourneyName,
    ParcelBook,
    SimCredentials,
    create_app,
    signer_for,
)
from integrations.carriers.base import CarrierClient
from integrations.carriers.kuaidi100 import Kuaidi100Client
from integrations.carriers.mapping import aftership_status, kuaidi100_event_status, kuaidi100_state, track17_status
from integrations.carriers.registry import carrier_client
from integrations.carriers.track17 import Track17Client
from models.status import TrackingStatus as S
from models.tracking import TrackingSnapshot
from tests.support.simulator import running_simulator

pytestmark = pytest.mark.timeout(60)

BASE = "http://sim.test"
CREDS = SimCredentials()
CODES = ("sim", "kuaidi100", "17track", "aftership")
INFO, PICKED, TRANSIT, OUT, DONE = S.INFO_RECEIVED, S.PICKED_UP, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED
# The events each preset's parcel shows in the end, oldest first (written out, not derived from JOURNEYS).
EVENTS: dict[str, list[S]] = {
    "happy": [INFO, PICKED, TRANSIT, OUT, DONE],
    "backwards": [INFO, PICKED, TRANSIT, OUT, TRANSIT, DONE],
    "stall": [INFO, PICKED, TRANSIT, OUT, DONE],
    "delivery_failure": [INFO, PICKED, TRANSIT, OUT, S.ATTEMPT_FAILED, OUT, DONE],
    "refusal": [INFO, PICKED, TRANSIT, OUT, S.REFUSED, S.RETURNING, S.RETURNED],
    "return": [INFO, PICKED, TRANSIT, S.EXCEPTION, S.RETURNING, S.RETURNED],
}


def answers(name: str) -> list[S]:
    """The newest status of each answer in query mode, until the journey's end."""
    if name == "stall":
        return [INFO, PICKED, *[TRANSIT] * 96, OUT, DONE]
    return EVENTS[name]


def ticking(start: datetime = datetime(2026, 7, 1, 8, 0, tzinfo=UTC), step: timedelta = timedelta(minutes=7)) -> Any:
    """A clock that moves on by `step` every time it is read: every event gets its own time."""
    ticks = itertools.count()
    return lambda: start + step * next(ticks)


def settings(url: str = BASE) -> Settings:
    return Settings.model_validate(
        {
            "carrier_sim_url": url,
            "carrier_kuaidi100_customer": CREDS.kuaidi100_customer,
            "carrier_kuaidi100_key": CREDS.kuaidi100_key,
            "carrier_17track_key": CREDS.track17_key,
            "carrier_aftership_key": CREDS.aftership_key,
        }
    )


@asynccontextmanager
async def simulator(clock: Callable[[], datetime] | None = None) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The simulator app in query mode, reached through httpx's ASGI transport (no socket)."""
    app = create_app(0.05, "query", clock=clock or ticking())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=5) as http:
        yield app, http


async def set_journey(http: httpx.AsyncClient, number: str, expect: int = 201, **body: Any) -> dict[str, Any]:
    response = await http.post("/sim/journeys", json={"tracking_no": number, **body})
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


async def walk(client: CarrierClient, number: str, times: int) -> list[TrackingSnapshot]:
    return [await client.track(number) for _ in range(times)]


def newest(snapshots: list[TrackingSnapshot]) -> list[S]:
    return [snapshot.status for snapshot in snapshots]


def event_statuses(snapshot: TrackingSnapshot) -> list[S]:
    return [event.status for event in snapshot.events]


# --- the presets and the words ------------------------------------------------------------------------------
def test_presets_are_the_documented_journeys() -> None:
    assert set(JOURNEYS) == set(get_args(JourneyName)) == set(EVENTS)
    for name, journey in JOURNEYS.items():
        assert journey.name == name
        assert journey.statuses == EVENTS[name], name
        holds = [step.hold for step in journey.steps]
        assert holds == [STALL_HOLD if name == "stall" and i == 2 else 1 for i in range(len(holds))], name
        assert all(step.location and step.description for step in journey.steps), name
        # repeated statuses carry their own text (17TRACK folds identical events)
        texts = [(step.status, step.description) for step in journey.steps]
        assert len(set(texts)) == len(texts), name
    assert STALL_HOLD == 96
    pivots = {name: j.steps[j.pivot].status for name, j in JOURNEYS.items() if j.pivot is not None}
    assert pivots == {
        "backwards": TRANSIT,
        "stall": TRANSIT,
        "delivery_failure": S.ATTEMPT_FAILED,
        "refusal": S.REFUSED,
    } | {"return": S.EXCEPTION}
    # the happy journey is the old STEPS, word for word
    assert [(step.status, step.location, step.description) for step in HAPPY.steps] == list(STEPS)
    assert JOURNEYS["happy"].pivot is None


def test_with_hold_sets_the_telling_step_and_forever_drops_what_follows() -> None:
    held = JOURNEYS["delivery_failure"].with_hold(4)
    assert [step.hold for step in held.steps] == [1, 1, 1, 1, 4, 1, 1]
    forever = JOURNEYS["stall"].with_hold(None)
    assert forever.statuses == [INFO, PICKED, TRANSIT] and forever.steps[-1].hold is None
    assert JOURNEYS["stall"].steps[2].hold == STALL_HOLD  # the preset itself is untouched
    with pytest.raises(ValueError, match="no step to hold"):
        HAPPY.with_hold(3)


def test_journey_statuses_are_those_every_shape_can_say() -> None:
    assert set(JOURNEY_STATUSES) == set(S) - {S.PENDING, S.EXPIRED}
    for journey in JOURNEYS.values():
        assert set(journey.statuses) <= JOURNEY_STATUSES


@pytest.mark.parametrize("status", sorted(JOURNEY_STATUSES))
def test_every_journey_word_maps_back_to_its_status(status: S) -> None:
    words = CARRIER_WORDS[status]
    # Kuaidi100: the answer's state, a trace line's code, and its name alone
    assert kuaidi100_state(words.kuaidi100_code) is status
    assert kuaidi100_event_status(words.kuaidi100_code, words.kuaidi100_name, "") is status
    assert kuaidi100_event_status(None, words.kuaidi100_name, words.kuaidi100_context) is status
    # 17TRACK: latest status with sub-status, an event's sub-status (with and without its stage), the stage alone
    assert track17_status(words.track17_status, words.track17_sub_status) is status
    assert words.track17_sub_status.split("_", 1)[0] == words.track17_status
    assert track17_status(None, words.track17_sub_status, words.track17_stage) is status
    if words.track17_stage is not None:
        assert track17_status(None, None, words.track17_stage) is status
    # AfterShip: tag with subtag
    assert aftership_status(words.aftership_tag, words.aftership_subtag) is status
    assert words.aftership_subtag.split("_", 1)[0] == words.aftership_tag


# --- every preset through every adapter ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(EVENTS))
@pytest.mark.parametrize("code", CODES)
async def test_walking_a_preset_gives_its_status_sequence(code: str, name: str) -> None:
    number = f"J{name.upper().replace('_', '')}{code.upper()}"
    expected = answers(name)
    async with simulator() as (_, http):
        if name != "happy":
            view = await set_journey(http, number, journey=name)
            assert view["journey"] == name and [step["status"] for step in view["steps"]] == EVENTS[name]
        client = carrier_client(code, http, settings())
        seen = await walk(client, number, len(expected) + 2)
    assert newest(seen) == expected + [expected[-1]] * 2  # and it stays at the end
    final = seen[-1]
    assert final.carrier == code and final.tracking_no == number
    assert event_statuses(final) == EVENTS[name]
    times = [event.at for event in final.events]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(event.location and event.description for event in final.events)
    for snapshot in seen:  # each answer's newest event is its status
        assert snapshot.events[-1].status is snapshot.status
        if snapshot.status is not DONE:
            assert snapshot.signed_by is None and snapshot.signed_at is None
    if final.status is DONE:
        assert final.signed_by == signer_for(number)
        assert final.signed_at == final.events[-1].at


@pytest.mark.parametrize("code", CODES)
async def test_backwards_scan_is_the_newest_status(code: str) -> None:
    number = f"BACK{code.upper()}"
    async with simulator() as (_, http):
        await set_journey(http, number, journey="backwards")
        client = carrier_client(code, http, settings())
        seen = await walk(client, number, 6)
    back = seen[4]
    assert back.status is TRANSIT
    assert event_statuses(back) == [INFO, PICKED, TRANSIT, OUT, TRANSIT]
    assert back.events[-1].at > back.events[-2].at  # the in-transit scan really is the latest event
    assert back.signed_by is None
    assert seen[5].status is DONE and seen[5].signed_by == signer_for(number)


@pytest.mark.parametrize("code", CODES)
async def test_stall_holds_the_status_for_hold_answers(code: str) -> None:
    number = f"STALL{code.upper()}"
    async with simulator() as (_, http):
        view = await set_journey(http, number, journey="stall", hold=5)
        assert [step["hold"] for step in view["steps"]] == [1, 1, 5, 1, 1]
        client = carrier_client(code, http, settings())
        seen = await walk(client, number, 10)
    assert newest(seen) == [INFO, PICKED, TRANSIT, TRANSIT, TRANSIT, TRANSIT, TRANSIT, OUT, DONE, DONE]
    stalled = seen[2:7]
    assert all(snapshot.events == stalled[0].events for snapshot in stalled)  # no news at all meanwhile
    assert event_statuses(seen[-1]) == [INFO, PICKED, TRANSIT, OUT, DONE]


@pytest.mark.parametrize("code", CODES)
async def test_stall_forever_until_released(code: str) -> None:
    number = f"EVER{code.upper()}"
    async with simulator() as (_, http):
        view = await set_journey(http, number, journey="stall", hold=None)
        held = [(step["status"], step["hold"]) for step in view["steps"]]
        assert held == [("INFO_RECEIVED", 1), ("PICKED_UP", 1), ("IN_TRANSIT", None)]
        client = carrier_client(code, http, settings())
        stuck = await walk(client, number, 40)
        assert newest(stuck) == [INFO, PICKED] + [TRANSIT] * 38
        assert (await http.delete(f"/sim/journeys/{number}")).status_code == 204  # the stall is over
        assert (await http.get(f"/sim/journeys/{number}")).json()["journey"] == "happy"
        after = await walk(client, number, 3)
    assert newest(after) == [OUT, DONE, DONE]  # held long enough: it moves on at the next answer
    assert event_statuses(after[-1]) == [INFO, PICKED, TRANSIT, OUT, DONE]


# --- journeys on parcels already seen, the register routes, the rest of the API ---------------------------------
async def test_a_journey_set_after_first_sight_goes_on_from_there() -> None:
    async with simulator() as (_, http):
        client = carrier_client("sim", http, settings())
        before = await walk(client, "LATE1", 3)
        assert newest(before) == [INFO, PICKED, TRANSIT]
        await set_journey(http, "LATE1", journey="refusal")
        await set_journey(http, "LATE1", expect=200, journey="refusal")  # replacing answers 200
        after = await walk(client, "LATE1", 5)
    assert newest(after) == [OUT, S.REFUSED, S.RETURNING, S.RETURNED, S.RETURNED]
    assert event_statuses(after[-1]) == EVENTS["refusal"]
    assert after[-1].events[:3] == before[-1].events  # what was shown stays as it was


async def test_register_routes_keep_working_with_journeys() -> None:
    async with simulator() as (app, http):
        s = settings()
        # Kuaidi100: a subscription pre-registers the parcel, which then follows its journey
        await set_journey(http, "KDJ1", journey="refusal")
        kuaidi100 = carrier_client("kuaidi100", http, s)
        assert isinstance(kuaidi100, Kuaidi100Client)
        await kuaidi100.subscribe("KDJ1", "http://127.0.0.1:9/webhooks/carriers/kuaidi100")
        assert app.state.book.known("KDJ1")
        assert newest(await walk(kuaidi100, "KDJ1", 8)) == [*EVENTS["refusal"], S.RETURNED]
        # 17TRACK: a journey alone does not make the number registered
        await set_journey(http, "T17J1", journey="return")
        assert not app.state.book.known("T17J1")
        registered = await http.post(
            "/track17/track/v2.2/register", json=[{"number": "T17J1"}], headers={"17token": CREDS.track17_key}
        )
        assert registered.json()["data"]["accepted"] == [{"origin": 1, "number": "T17J1", "carrier": 3011}]
        track17 = carrier_client("17track", http, s)
        assert isinstance(track17, Track17Client)
        assert newest(await walk(track17, "T17J1", 6)) == EVENTS["return"]
        await set_journey(http, "T17J2", journey="delivery_failure")  # registered by the client's first track
        assert newest(await walk(track17, "T17J2", 7)) == EVENTS["delivery_failure"]
        # AfterShip: created on the first track, then walks the journey
        await set_journey(http, "ASJ1", journey="backwards")
        aftership = carrier_client("aftership", http, s)
        assert newest(await walk(aftership, "ASJ1", 6)) == EVENTS["backwards"]
        # sim: pre-registration shows the journey's first step
        await set_journey(http, "SIMJ1", steps=[{"status": "PICKED_UP"}, {"status": "DELIVERED"}])
        created = await http.post("/sim/parcels", json={"tracking_no": "SIMJ1"})
        assert (created.status_code, created.json()["status"]) == (201, "PICKED_UP")
        assert newest(await walk(carrier_client("sim", http, s), "SIMJ1", 3)) == [PICKED, DONE, DONE]


async def test_explicit_steps_are_what_the_presets_are_made_of() -> None:
    async with simulator() as (_, http):
        preset = JOURNEYS["delivery_failure"]
        steps = [step.model_dump(mode="json") for step in preset.steps]
        view = await set_journey(http, "EXPL1", steps=steps)
        assert view == {"tracking_no": "EXPL1", "journey": None, "steps": steps}
        await set_journey(http, "EXPL2", journey="delivery_failure")
        client = carrier_client("sim", http, settings())
        explicit, named = await walk(client, "EXPL1", 8), await walk(client, "EXPL2", 8)
    assert newest(explicit) == newest(named) == [*EVENTS["delivery_failure"], DONE]
    wording = [(e.status, e.location, e.description) for e in explicit[-1].events]
    assert wording == [(e.status, e.location, e.description) for e in named[-1].events]


async def test_explicit_steps_with_holds_and_default_wording() -> None:
    async with simulator() as (_, http):
        view = await set_journey(
            http,
            "GEN1",
            steps=[
                {"status": "IN_TRANSIT", "hold": 2},
                {"status": "AVAILABLE_FOR_PICKUP", "hold": 3, "location": "杭州 丰巢柜 7号"},
                {"status": "DELIVERED", "description": "Collected from the locker, signed for"},
            ],
        )
        assert [step["hold"] for step in view["steps"]] == [2, 3, 1]
        assert view["steps"][0]["location"] == "杭州 转运中心"  # the status's usual wording
        assert view["steps"][0]["description"] == "Departed sorting centre"
        for code in CODES:
            number = f"GEN{code.upper()}"
            await set_journey(http, number, steps=view["steps"])
            seen = await walk(carrier_client(code, http, settings()), number, 7)
            assert newest(seen) == [
                TRANSIT,
                TRANSIT,
                S.AVAILABLE_FOR_PICKUP,
                S.AVAILABLE_FOR_PICKUP,
                S.AVAILABLE_FOR_PICKUP,
                DONE,
                DONE,
            ]
            assert seen[2].events[-1].location == "杭州 丰巢柜 7号"
            assert seen[-1].signed_by == signer_for(number), code


BAD_JOURNEYS: list[dict[str, Any]] = [
    {"journey": "teleport"},
    {"steps": []},
    {"steps": [{"status": "LOST"}]},
    {"steps": [{"status": "PENDING"}]},  # Kuaidi100 cannot say it
    {"steps": [{"status": "EXPIRED"}]},
    {"steps": [{"status": "IN_TRANSIT", "hold": 0}]},
    {"steps": [{"status": "IN_TRANSIT", "hold": -3}]},
    {"steps": [{"status": "IN_TRANSIT", "hold": 2_000_000}]},
    {"steps": [{"status": "IN_TRANSIT", "hold": True}]},
    {"steps": [{"status": "IN_TRANSIT", "hold": "3"}]},
    {"journey": "stall", "hold": 2.5},
    {"steps": [{"status": "IN_TRANSIT", "hold": None}, {"status": "DELIVERED"}]},  # nothing after forever
    {"steps": [{"status": "DELIVERED", "signer": "x"}]},
    {"steps": [{"hold": 2}]},
    {"steps": [{"status": "IN_TRANSIT"}] * 65},
    {"steps": [{"status": "DELIVERED"}], "hold": 3},
    {"journey": "stall", "hold": 0},
    {"journey": "stall", "hodl": 3},
    {"journey": "happy", "hold": 3},  # nothing to hold
    {"journey": "stall", "steps": [{"status": "DELIVERED"}]},
    {},
]


async def test_nonsense_is_refused_with_422_and_changes_nothing() -> None:
    async with simulator() as (app, http):
        await set_journey(http, "VAL1", journey="refusal")
        before = (await http.get("/sim/journeys/VAL1")).json()
        for bad in BAD_JOURNEYS:
            for number in ("VAL1", "VAL2"):
                response = await http.post("/sim/journeys", json={"tracking_no": number, **bad})
                assert response.status_code == 422, (bad, response.text)
        assert (await http.post("/sim/journeys", json={"tracking_no": "V 1", "journey": "stall"})).status_code == 422
        assert (await http.post("/sim/journeys", content=b"[1, 2]")).status_code == 422
        assert (await http.get("/sim/journeys/VAL1")).json() == before
        assert (await http.get("/sim/journeys/VAL2")).json()["journey"] == "happy"
        assert not app.state.book.known("VAL1") and not app.state.book.known("VAL2")
        client = carrier_client("sim", http, settings())
        assert newest(await walk(client, "VAL1", 7)) == EVENTS["refusal"]
        assert newest(await walk(client, "VAL2", 5)) == EVENTS["happy"]


async def test_happy_path_is_unchanged_without_a_journey() -> None:
    async with simulator() as (_, http):
        await set_journey(http, "NEIGHBOUR", journey="return")  # a journey elsewhere changes nothing here
        await set_journey(http, "UNDONE", journey="stall", hold=None)
        assert (await http.delete("/sim/journeys/UNDONE")).status_code == 204
        assert (await http.delete("/sim/journeys/NEVERSET")).status_code == 204
        happy = (await http.get("/sim/journeys/PLAIN")).json()
        assert happy["journey"] == "happy" and [s["status"] for s in happy["steps"]] == EVENTS["happy"]
        presets = (await http.get("/sim/journeys")).json()
        assert {name: [s["status"] for s in steps] for name, steps in presets.items()} == EVENTS
        client = carrier_client("sim", http, settings())
        for number in ("PLAIN", "UNDONE"):
            seen = await walk(client, number, 6)
            assert newest(seen) == [INFO, PICKED, TRANSIT, OUT, DONE, DONE]  # the k-th GET shows step k-1
            assert [(e.status, e.location, e.description) for e in seen[-1].events] == list(STEPS)


# --- time mode ------------------------------------------------------------------------------------------------
def test_time_mode_holds_are_steps_stamped_when_due() -> None:
    start = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    now = [start]
    book = ParcelBook(step_seconds=60, advance="time", clock=lambda: now[0])
    book.set_journey("TS1", JOURNEYS["stall"].with_hold(3))
    assert book.query("TS1").status is INFO
    now[0] = start + timedelta(seconds=299)  # in transit since 120 s, held for 3 steps: until 300 s
    assert book.query("TS1").status is TRANSIT
    now[0] = start + timedelta(seconds=300)
    assert book.query("TS1").status is OUT
    now[0] = start + timedelta(hours=2)
    view = book.query("TS1")
    assert [e.status for e in view.events] == [INFO, PICKED, TRANSIT, OUT, DONE]
    assert [e.at for e in view.events] == [start + timedelta(seconds=s) for s in (0, 60, 120, 300, 360)]
    assert view.signed_at == start + timedelta(seconds=360)


def test_time_mode_release_of_a_forever_stall_stamps_nothing_in_the_past() -> None:
    start = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    now = [start]
    book = ParcelBook(step_seconds=60, advance="time", clock=lambda: now[0])
    book.register("TS2")
    book.set_journey("TS2", JOURNEYS["stall"].with_hold(None))  # after first sight
    now[0] = start + timedelta(days=2)
    assert [e.status for e in book.query("TS2").events] == [INFO, PICKED, TRANSIT]
    released = start + timedelta(days=2, minutes=5)
    now[0] = released
    assert book.clear_journey("TS2") and not book.clear_journey("TS2")
    view = book.query("TS2")
    assert view.status is OUT and view.events[-1].at == released  # due long ago: comes at the release
    now[0] = released + timedelta(seconds=60)
    view = book.query("TS2")
    assert view.status is DONE and view.events[-1].at == released + timedelta(seconds=60)
    assert [e.at for e in view.events[:3]] == [start, start + timedelta(seconds=60), start + timedelta(seconds=120)]


def test_time_mode_refusal_ends_returned_without_signer() -> None:
    start = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    book = ParcelBook(step_seconds=0, advance="time", clock=lambda: start)
    book.set_journey("TS3", JOURNEYS["refusal"])
    view = book.query("TS3")  # step_seconds 0: the whole journey at once, as before
    assert [e.status for e in view.events] == EVENTS["refusal"]
    assert view.status is S.RETURNED and view.signed_by is None and view.signed_at is None


# --- the served simulator, wall clock: the events of one walk share a second, so order and 17TRACK's folding of
# identical events rest on the journey's own wording -------------------------------------------------------------
async def test_served_simulator_backwards_through_every_adapter() -> None:
    with running_simulator(advance="query") as url:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            for code in CODES:
                number = f"SRVBACK{code.upper()}"
                await set_journey(http, number, journey="backwards")
                seen = await walk(carrier_client(code, http, settings(url)), number, 6)
                assert newest(seen) == EVENTS["backwards"], code
                assert event_statuses(seen[4]) == [INFO, PICKED, TRANSIT, OUT, TRANSIT], code
                assert event_statuses(seen[-1]) == EVENTS["backwards"], code
