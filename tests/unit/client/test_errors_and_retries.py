"""Error statuses become typed errors; only safe requests are repeated."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from flowyard.client import (
    ApiError,
    AuthError,
    ConflictError,
    InvalidArgument,
    NotFoundError,
    RetryPolicy,
    ServerUnavailable,
    ValidationError,
)
from flowyard.schemas import work_pools as wp
from tests.unit.client.fakes import ScriptedApi, answer, drop, refuse

NOW = datetime(2026, 1, 1, tzinfo=UTC)
POOL = wp.WorkPool(
    id=uuid.uuid4(),
    name="pool",
    type=wp.WorkPoolType.MANAGED,
    description="",
    paused=False,
    concurrency_limit=None,
    base_job_template={},
    isolation=wp.Isolation.STRICT,
    created=NOW,
    updated=NOW,
).model_dump(mode="json")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, ValidationError),
        (413, ApiError),
        (500, ApiError),
    ],
)
async def test_each_error_status_raises_its_error_class_with_the_servers_detail(
    status: int, error: type[ApiError]
) -> None:
    api = ScriptedApi([answer(status, {"detail": "work pool nope not found"})])
    async with api.client() as client:
        with pytest.raises(error, match=r"^work pool nope not found$") as raised:
            await client.read_work_pool("nope")
    assert type(raised.value) is error
    assert raised.value.status == status
    assert raised.value.method == "GET"
    assert raised.value.url == "http://api.test:4280/api/work-pools/nope"


async def test_a_validation_error_names_the_first_invalid_field() -> None:
    body = {
        "detail": "parameters.n: expected an integer",
        "errors": [
            {"field": "parameters.n", "message": "expected an integer"},
            {"field": "tags.0", "message": "too long"},
        ],
    }
    api = ScriptedApi([answer(422, body)])
    async with api.client() as client:
        with pytest.raises(ValidationError) as raised:
            await client.create_work_pool(wp.WorkPoolCreate(name="x"))
    assert raised.value.field == "parameters.n"
    assert [e.field for e in raised.value.errors] == ["parameters.n", "tags.0"]


async def test_a_401_without_a_configured_key_says_how_to_configure_one() -> None:
    api = ScriptedApi([answer(401, {"detail": "missing Authorization: Bearer <api key> header"})])
    async with api.client(api_key=None) as client:
        with pytest.raises(AuthError, match="set FLOWYARD_API_KEY or run `flowyard login`"):
            await client.read_me()
    assert "authorization" not in api.requests[0].headers


async def test_an_error_page_that_is_not_json_keeps_a_readable_excerpt() -> None:
    html = "<html>Bad Gateway</html>\n<body>...</body>"
    api = ScriptedApi([lambda r: httpx.Response(502, text=html)])
    async with api.client() as client:
        with pytest.raises(ApiError, match=r"^502 Bad Gateway: <html>Bad Gateway</html>$"):
            await client.list_work_pools()


async def test_requests_carry_the_key_as_a_bearer_token() -> None:
    api = ScriptedApi([answer(200, [])])
    async with api.client(api_key="fy_abc_secret") as client:
        assert await client.list_work_pools() == []
    assert api.requests[0].headers["authorization"] == "Bearer fy_abc_secret"
    assert api.requests[0].headers["user-agent"].startswith("flowyard-client/")


async def test_a_read_is_retried_on_503_and_succeeds() -> None:
    api = ScriptedApi([answer(503, {"detail": "the database is unavailable"}), answer(200, POOL)])
    async with api.client() as client:
        pool = await client.read_work_pool("pool")
    assert pool.name == "pool"
    assert len(api.requests) == 2


async def test_a_read_still_failing_with_503_after_the_retries_raises_the_detail() -> None:
    api = ScriptedApi([answer(503, {"detail": "the database is unavailable"})] * 4)
    async with api.client() as client:
        with pytest.raises(ApiError, match="database is unavailable") as raised:
            await client.read_work_pool("pool")
    assert raised.value.status == 503
    assert len(api.requests) == 4


async def test_a_create_is_not_retried_on_503() -> None:
    api = ScriptedApi([answer(503, {"detail": "the database is unavailable"})])
    async with api.client() as client:
        with pytest.raises(ApiError):
            await client.create_work_pool(wp.WorkPoolCreate(name="pool"))
    assert len(api.requests) == 1


async def test_a_create_is_not_retried_when_the_connection_breaks_after_sending() -> None:
    api = ScriptedApi([drop])
    async with api.client() as client:
        with pytest.raises(ServerUnavailable, match="connection reset by peer"):
            await client.create_work_pool(wp.WorkPoolCreate(name="pool"))
    assert len(api.requests) == 1


async def test_a_create_is_retried_when_the_connection_was_refused_since_nothing_was_sent() -> None:
    api = ScriptedApi([refuse, refuse, answer(201, POOL)])
    async with api.client() as client:
        pool = await client.create_work_pool(wp.WorkPoolCreate(name="pool"))
    assert pool.name == "pool"
    assert len(api.requests) == 3


async def test_a_read_is_retried_when_the_connection_breaks() -> None:
    api = ScriptedApi([drop, answer(200, POOL)])
    async with api.client() as client:
        assert (await client.read_work_pool("pool")).name == "pool"


async def test_an_unreachable_server_names_the_url_and_how_to_start_one() -> None:
    api = ScriptedApi([refuse] * 4)
    async with api.client() as client:
        with pytest.raises(ServerUnavailable) as raised:
            await client.read_me()
    message = str(raised.value)
    assert "http://api.test:4280/api" in message
    assert "connection refused" in message
    assert "`flowyard server start`" in message


async def test_retries_can_be_turned_off() -> None:
    api = ScriptedApi([refuse])
    async with api.client(retry=RetryPolicy(attempts=0)) as client:
        with pytest.raises(ServerUnavailable):
            await client.check_health()
    assert len(api.requests) == 1


def test_a_servers_retry_after_is_honoured_up_to_the_backoff_cap() -> None:
    policy = RetryPolicy(attempts=1, backoff=0.0, max_backoff=0.0)
    assert policy.delay(0, retry_after=30) == 0.0
    assert RetryPolicy(max_backoff=4).delay(0, retry_after=1.5) == 1.5


async def test_path_values_are_escaped_so_a_name_cannot_reach_another_endpoint() -> None:
    api = ScriptedApi([answer(404, {"detail": "not found"})])
    async with api.client() as client:
        with pytest.raises(NotFoundError):
            await client.read_work_pool("../api-keys")
    assert api.requests[0].url.raw_path == b"/api/work-pools/..%2Fapi-keys"


async def test_dot_segments_are_escaped_so_url_normalisation_cannot_change_the_endpoint() -> None:
    api = ScriptedApi([answer(404, {"detail": "not found"})] * 2)
    async with api.client() as client:
        with pytest.raises(NotFoundError):
            await client.read_work_pool("..")
        with pytest.raises(NotFoundError):
            await client.read_result("../variables/x")
    assert api.requests[0].url.raw_path == b"/api/work-pools/%2E%2E"
    assert api.requests[1].url.raw_path == b"/api/results/%2E%2E/variables/x"


async def test_a_deployment_name_without_a_flow_part_is_refused_before_any_request() -> None:
    api = ScriptedApi([])
    async with api.client() as client:
        with pytest.raises(InvalidArgument, match="'flow/deployment', got 'daily'"):
            await client.read_deployment_by_name("daily")
    assert api.requests == []
