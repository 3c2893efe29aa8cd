"""No request can make the API answer 5xx, and what it answers is what its
OpenAPI document says.

schemathesis generates requests for every operation of the document the
server serves: valid ones, and ones that break the schema (wrong types,
out-of-range numbers, missing fields, odd text). Each operation is fuzzed on
a fresh database holding a few seeded rows.

Two passes: as the operator (an admin API key), and as the process running
the seeded run (its run token), which may act on that run only.
``test_credentials.py`` fuzzes the Authorization header itself. No operation
is left out: the log follow stream answers at once because it is never
aimed at a run that exists (see ``_aim_path``), and every request has a
timeout, so one that blocks fails the test.

Aiming: a random well-formed id (a run id, a pool name) almost never names
an existing row, so the request would stop at "404 not found" before any
interesting code. Well-formed ids in the path and in the body are therefore
pointed at the seeded rows; malformed ones are sent as generated, to fuzz
validation.

Runs are derandomized (the same requests every run, so CI failures
reproduce) and sized to keep this module around a minute on two cores.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from flowyard.server.app import create_app
from flowyard.settings import Settings
from tests.fuzz.conftest import Seeded

# The document does not depend on settings, and building the app reads and
# writes nothing under `home`.
DOCUMENT = create_app(
    Settings(home=Path("/nonexistent/flowyard-home"), server_key="unused", dispatcher=False)
).openapi()

CONFIG = schemathesis.Config.from_dict(
    {
        "phases": {
            # Every operation is fuzzed alone, on its own database; chaining
            # calls (stateful) would need the whole suite's budget.
            "stateful": {"enabled": False},
        },
    }
)
# Times. schemathesis' own RFC 3339 strings rarely land where a time breaks
# things, so these are any instant at any whole-minute offset, and half the
# time one that has broken things: naive, at the ends of years 1-9999, and
# aware with a UTC equivalent outside them. (Registered for this process:
# only the fuzz tests load schemas.)
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
schemathesis.openapi.format(
    "date-time",
    st.one_of(
        st.datetimes(timezones=OFFSETS).map(datetime.isoformat),
        st.sampled_from(
            [
                "2030-01-01T00:00:00",
                "0001-01-01T00:00:00+05:00",
                "9999-12-31T23:59:59-14:00",
                "9999-12-31T23:59:59.999999Z",
                "0001-01-01T00:00:00Z",
            ]
        ),
    ),
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
# A run token passes validation the same way an API key does, so its pass
# skips the coverage phase (boundary values of every field) and fuzzes less.
RUN_TOKEN_CONFIG = schemathesis.Config.from_dict(
    {"phases": {"stateful": {"enabled": False}, "coverage": {"enabled": False}}}
)
run_token_schema = schemathesis.openapi.from_dict(DOCUMENT, config=RUN_TOKEN_CONFIG)

# Per operation and pass. A deeper local hunt: FLOWYARD_FUZZ_EXAMPLES=1000,
# FLOWYARD_FUZZ_RANDOM=1 for other requests than CI's on every run, and
# FLOWYARD_FUZZ_POSTGRES=1 (see conftest).
EXAMPLES = int(os.environ.get("FLOWYARD_FUZZ_EXAMPLES", "15"))
DERANDOMIZE = not os.environ.get("FLOWYARD_FUZZ_RANDOM")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        # The server and its seeded rows are built once per operation on purpose.
        HealthCheck.function_scoped_fixture,
    ],
)
# A request that takes longer than this is a failure too: nothing in the API
# should block. The log follow stream is never aimed at a real run (see
# `_aim_path`), so it always answers at once.
TIMEOUT = 10


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _aim_path(case: schemathesis.Case, seeded: Seeded) -> None:
    params = case.path_parameters
    if not params:
        return
    path = case.operation.path
    if path.endswith("/logs/follow"):
        # Followed to the end, a live run's stream never closes: leave it at
        # the generated (unknown) run, which answers 404 or 422 at once.
        return
    by_id = {
        "run_id": seeded.run_id,
        "deployment_id": seeded.deployment_id,
        "task_run_id": seeded.task_run_id,
        "ident": seeded.spare_key_id,
    }
    for name, target in by_id.items():
        if _is_uuid(params.get(name)):
            params[name] = target
    names = {
        "/api/work-pools/{name}": seeded.pool,
        "/api/variables/{name}": seeded.variable,
        "/api/secrets/{name}": seeded.secret,
        "/api/workspaces/{name}": "default",
        "/api/deployments/name/{flow_name}/{name}": seeded.deployment_name,
    }
    for template, target in names.items():
        if path.startswith(template) and isinstance(params.get("name"), str):
            params["name"] = target
    if "flow_name" in params and isinstance(params["flow_name"], str):
        params["flow_name"] = seeded.flow_name
    key = params.get("key")
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.:=+/-]*", key):
        params["key"] = seeded.result_key


def _aim_body(value: Any, seeded: Seeded) -> Any:
    """Ids in the body that are well formed, pointed at the seeded rows."""
    targets = {
        "flow_run_id": seeded.run_id,
        "task_run_id": seeded.task_run_id,
        "parent_task_run_id": seeded.task_run_id,
        "deployment_id": seeded.deployment_id,
    }
    if isinstance(value, list):
        return [_aim_body(item, seeded) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key in targets and _is_uuid(item):
            out[key] = targets[key]
        elif key == "deployment_ids" and isinstance(item, list):
            out[key] = [seeded.deployment_id if _is_uuid(x) else x for x in item]
        elif key == "work_pool_name" and isinstance(item, str):
            out[key] = seeded.pool
        else:
            out[key] = _aim_body(item, seeded)
    return out


def aim(case: schemathesis.Case, seeded: Seeded) -> None:
    _aim_path(case, seeded)
    if isinstance(case.body, (dict, list)):
        case.body = _aim_body(case.body, seeded)


def call(case: schemathesis.Case, base_url: str, token: str) -> None:
    response = case.call(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )
    case.validate_response(response, checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_requests_with_an_admin_key_get_documented_answers_never_5xx(
    case: schemathesis.Case, live_url: str, admin_key: str, seeded: Seeded
) -> None:
    aim(case, seeded)
    call(case, live_url, admin_key)


@run_token_schema.parametrize()
@settings(FUZZ, max_examples=max(1, EXAMPLES // 3))
def test_requests_with_a_run_token_get_documented_answers_never_5xx(
    case: schemathesis.Case, live_url: str, seeded: Seeded
) -> None:
    """As the process running the seeded run: its own run is in reach, the rest 403 or 404."""
    aim(case, seeded)
    call(case, live_url, seeded.run_token)


def test_the_fuzzed_document_is_the_one_the_server_serves(live_url: str) -> None:
    r = httpx.get(f"{live_url}/api/openapi.json", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json() == DOCUMENT
