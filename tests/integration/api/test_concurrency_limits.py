"""Global concurrency limits: all-or-nothing takes, leases that end by themselves, rate
limits that decay, no slot ever taken twice by racing takers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import ClientFactory, make_workspace_key
from tests.integration.api.test_task_runs import new_run, run_token


async def make_limit(client: httpx.AsyncClient, name: str, limit: int, **fields: Any) -> None:
    r = await client.post("/concurrency-limits", json={"name": name, "limit": limit, **fields})
    assert r.status_code == 201, r.text


async def take(client: httpx.AsyncClient, *names: str, **fields: Any) -> dict[str, Any]:
    r = await client.post("/concurrency-limits/acquire", json={"names": list(names), **fields})
    assert r.status_code == 200, r.text
    grant: dict[str, Any] = r.json()
    return grant


async def test_slots_are_taken_until_the_limit_then_refused_with_when_to_retry(
    client: httpx.AsyncClient,
) -> None:
    await make_limit(client, "db", 2)
    first, second = await take(client, "db"), await take(client, "db")
    assert first["acquired"]
    assert second["acquired"]
    refused = await take(client, "db")
    assert (refused["acquired"], refused["blocked_by"], refused["lease_id"]) == (False, "db", None)
    assert 0.05 <= refused["retry_after_seconds"] <= 2.0
    listed = (await client.get("/concurrency-limits")).json()
    assert [(x["name"], x["limit"], x["active_slots"]) for x in listed] == [("db", 2, 2)]
    assert (await client.delete(f"/concurrency-limits/leases/{first['lease_id']}")).status_code == 204  # fmt: skip
    assert (await take(client, "db"))["acquired"]
    # Releasing twice, or a lease that ran out, is no error.
    assert (await client.delete(f"/concurrency-limits/leases/{first['lease_id']}")).status_code == 204  # fmt: skip


async def test_a_take_of_several_limits_gets_all_or_none(client: httpx.AsyncClient) -> None:
    await make_limit(client, "a", 1)
    await make_limit(client, "b", 1)
    assert (await take(client, "b"))["acquired"]
    both = await take(client, "a", "b", "not-a-limit")
    assert (both["acquired"], both["blocked_by"], both["missing"]) == (False, "b", ["not-a-limit"])
    assert (await take(client, "a"))["acquired"]  # nothing of "a" was held by the refused take


async def test_a_lease_that_is_not_renewed_frees_its_slots(client: httpx.AsyncClient) -> None:
    await make_limit(client, "short", 1)
    held = await take(client, "short", lease_seconds=30)
    assert not (await take(client, "short"))["acquired"]
    renewed = await client.post(
        f"/concurrency-limits/leases/{held['lease_id']}/renew", json={"lease_seconds": 1}
    )
    assert renewed.status_code == 200
    assert renewed.json()["expires_at"] < held["expires_at"]  # renewed for 1 s from now
    await asyncio.sleep(1.2)  # the holder died: nobody renews
    assert (await take(client, "short"))["acquired"]
    late = await client.post(
        f"/concurrency-limits/leases/{held['lease_id']}/renew", json={"lease_seconds": 60}
    )
    assert late.status_code == 404  # the slots are gone; the holder is told


async def test_a_rate_limit_frees_slots_as_they_decay(client: httpx.AsyncClient) -> None:
    await make_limit(client, "api-calls", 2, slot_decay_per_second=1)
    assert (await take(client, "api-calls", mode="rate_limit"))["acquired"]
    assert (await take(client, "api-calls", mode="rate_limit"))["acquired"]
    refused = await take(client, "api-calls", mode="rate_limit")
    assert not refused["acquired"]
    assert refused["retry_after_seconds"] <= 1.0  # when the first slot has decayed
    await asyncio.sleep(refused["retry_after_seconds"] + 0.05)
    assert (await take(client, "api-calls", mode="rate_limit"))["acquired"]
    await make_limit(client, "no-decay", 5)
    r = await client.post(
        "/concurrency-limits/acquire", json={"names": ["no-decay"], "mode": "rate_limit"}
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "names")
    assert "no slot decay" in r.json()["detail"]


async def test_inactive_and_missing_limits_limit_nothing(client: httpx.AsyncClient) -> None:
    await make_limit(client, "paused", 0, active=False)
    grant = await take(client, "paused", "ghost")
    assert (grant["acquired"], grant["missing"]) == (True, ["ghost"])
    assert grant["lease_id"] is None  # nothing limited the take: no lease to renew
    r = await client.patch("/concurrency-limits/paused", json={"active": True})
    assert r.json()["active"] is True
    r = await client.post("/concurrency-limits/acquire", json={"names": ["paused"]})
    assert r.status_code == 422  # 1 slot of a limit of 0 can never be taken
    assert "can never be taken" in r.json()["detail"]


async def test_racing_takers_never_exceed_the_limit(client: httpx.AsyncClient) -> None:
    await make_limit(client, "race", 3)
    grants = await asyncio.gather(*(take(client, "race") for _ in range(12)))
    assert sum(g["acquired"] for g in grants) == 3
    listed = (await client.get("/concurrency-limits/race")).json()
    assert listed["active_slots"] == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "bad name", "limit": 1}, "name"),
        ({"name": "x", "limit": -1}, "limit"),
        ({"name": "x", "limit": 1, "slot_decay_per_second": -1}, "slot_decay_per_second"),
    ],
)
async def test_bad_limits_are_refused_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    r = await client.post("/concurrency-limits", json=body)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == field
    assert (await client.get("/concurrency-limits")).json() == []


async def test_names_are_unique_and_limits_are_managed_by_name(client: httpx.AsyncClient) -> None:
    await make_limit(client, "tag:warehouse", 4)
    r = await client.post("/concurrency-limits", json={"name": "tag:warehouse", "limit": 1})
    assert r.status_code == 409
    r = await client.patch("/concurrency-limits/tag:warehouse", json={"limit": 8})
    assert r.json()["limit"] == 8
    r = await client.patch("/concurrency-limits/tag:warehouse", json={"limit": None})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "limit")
    assert (await client.delete("/concurrency-limits/tag:warehouse")).status_code == 204
    assert (await client.get("/concurrency-limits/tag:warehouse")).status_code == 404


async def test_a_run_token_takes_slots_for_its_run_but_cannot_manage_limits(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    await make_limit(client, "shared", 1)
    run = await new_run(client)
    async with client_for(await run_token(client, run)) as runner:
        grant = await take(runner, "shared")
        assert grant["acquired"]
        r = await runner.post(f"/concurrency-limits/leases/{grant['lease_id']}/renew", json={})
        assert r.status_code == 200
        assert (await runner.post("/concurrency-limits", json={"name": "x", "limit": 1})).status_code == 403  # fmt: skip
        assert (await runner.delete("/concurrency-limits/shared")).status_code == 403
        other = await new_run(client)
        r = await runner.post(
            "/concurrency-limits/acquire", json={"names": ["shared"], "flow_run_id": other}
        )
        assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "flow_run_id")


async def test_another_workspaces_limits_and_leases_are_out_of_reach(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    await make_limit(client, "mine", 1)
    grant = await take(client, "mine")
    async with client_for(await make_workspace_key(client, "other")) as other:
        assert (await other.get("/concurrency-limits/mine")).status_code == 404
        theirs = await take(other, "mine")
        assert (theirs["acquired"], theirs["missing"]) == (True, ["mine"])
        await other.delete(f"/concurrency-limits/leases/{grant['lease_id']}")
        r = await other.post(f"/concurrency-limits/leases/{grant['lease_id']}/renew", json={})
        assert r.status_code == 404
    assert not (await take(client, "mine"))["acquired"]  # their release freed nothing of ours
    assert (await client.get(f"/concurrency-limits/leases/{uuid.uuid4()}")).status_code in {404, 405}  # fmt: skip


async def test_a_run_that_ends_gives_back_the_slots_it_still_holds(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    await make_limit(client, "one", 1)
    run = await new_run(client)
    async with client_for(await run_token(client, run)) as runner:
        assert (await take(runner, "one", lease_seconds=3600))["acquired"]
    assert not (await take(client, "one"))["acquired"]
    # Killed before its block could release: the run is crashed, and its slot comes back.
    r = await client.post(f"/flow-runs/{run}/state", json={"type": "CRASHED", "message": "killed"})
    assert r.json()["status"] == "ACCEPT"
    assert (await take(client, "one"))["acquired"]


async def test_a_runs_rate_limit_slots_decay_even_after_it_ends_and_tokens_keep_to_their_leases(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    await make_limit(client, "slow-api", 1, slot_decay_per_second=0.01)  # 100 s a slot
    await make_limit(client, "lock", 1)
    run, other = await new_run(client), await new_run(client)
    async with client_for(await run_token(client, run)) as runner:
        assert (await take(runner, "slow-api", mode="rate_limit"))["acquired"]
        held = await take(runner, "lock")
    await client.post(f"/flow-runs/{run}/state", json={"type": "COMPLETED"})
    assert not (await take(client, "slow-api", mode="rate_limit"))["acquired"]  # still decaying
    async with client_for(await run_token(client, other)) as stranger:
        # Another run's token cannot renew or release a lease it did not take.
        r = await stranger.post(f"/concurrency-limits/leases/{held['lease_id']}/renew", json={})
        assert r.status_code == 404


async def test_a_take_sent_again_after_a_lost_answer_finds_its_lease(
    client: httpx.AsyncClient,
) -> None:
    await make_limit(client, "once", 2)
    lease_id = str(uuid.uuid4())
    first = await take(client, "once", lease_id=lease_id)
    again = await take(client, "once", lease_id=lease_id)
    assert first["acquired"]
    assert again["acquired"]
    assert first["lease_id"] == again["lease_id"] == lease_id
    assert (await client.get("/concurrency-limits/once")).json()["active_slots"] == 1
