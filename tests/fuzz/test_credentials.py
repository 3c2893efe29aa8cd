"""No Authorization header, however malformed, makes the API answer 5xx.

The OpenAPI document only says the header is a string, so schemathesis would
send strings that never get past the first check. These are built to reach
each branch of the parsing: API keys (``fy_<prefix>_<secret>``) and run
tokens (``fyr_<run id hex>_<signature>``) with the real run's id, and any
Latin-1 text a header can carry.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import Seeded

TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
)


def _headers(run_hex: str) -> st.SearchStrategy[str]:
    return st.one_of(
        TEXT,
        TEXT.map("Bearer {}".format),
        TEXT.map("Bearer fy_{}".format),
        st.tuples(TEXT, TEXT).map(lambda pair: "Bearer fy_{}_{}".format(*pair)),
        TEXT.map("Bearer fyr_{}".format),
        TEXT.map(f"Bearer fyr_{run_hex}_{{}}".format),
    )


@pytest.fixture
def http(live_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_url, timeout=10) as client:
        yield client


@pytest.mark.parametrize("path", ["/api/me", "/api/flow-runs/{run}/logs/follow"])
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_authorization_header_is_answered_401_never_5xx(
    data: st.DataObject, path: str, http: httpx.Client, seeded: Seeded
) -> None:
    run_hex = seeded.run_id.replace("-", "")
    header = data.draw(_headers(run_hex), label="authorization").strip(" \t")
    headers = {"Authorization": header.encode("latin-1")} if header else {}
    r = http.get(path.format(run=seeded.run_id), headers=headers)
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.json()["detail"]
