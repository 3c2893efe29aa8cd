"""Starting a run from a deployment's Run form: typed parameters, inline errors, job variables."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.ui.conftest import make_deployment, make_pool, post_form

SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": "integer", "description": "how many"},
        "ratio": {"type": "number", "default": 0.5},
        "name": {"type": "string"},
        "mode": {"enum": ["fast", "slow"]},
        "dry_run": {"type": "boolean"},
        "options": {"type": "object"},
        "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    },
    "required": ["n"],
}


@pytest.fixture
async def deployment(client: httpx.AsyncClient) -> dict[str, object]:
    await make_pool(client)
    return await make_deployment(client, parameter_schema=SCHEMA, parameters={"name": "world"})


async def _runs(
    client: httpx.AsyncClient, deployment: dict[str, object]
) -> list[dict[str, object]]:
    items: list[dict[str, object]] = (
        await client.get("/flow-runs", params={"deployment_id": deployment["id"]})
    ).json()["items"]
    return items


async def submit(
    browser: httpx.AsyncClient, deployment: dict[str, object], **fields: str
) -> httpx.Response:
    url = f"/deployments/{deployment['id']}/run"
    return await post_form(browser, url, url, fields)


async def test_the_form_has_one_labelled_input_per_parameter_chosen_by_type(
    browser: httpx.AsyncClient, deployment: dict[str, object]
) -> None:
    page = (await browser.get(f"/deployments/{deployment['id']}/run")).text
    assert '<label for="param-n">n <span class="required">required</span>' in page
    assert 'id="param-n" name="param:n" type="number" step="1"' in page
    assert 'id="param-ratio" name="param:ratio" type="number" step="any"' in page
    assert 'placeholder="world"' in page  # the deployment's default, shown
    assert '<option value="&#34;fast&#34;">fast</option>' in page
    assert '<option value="true">true</option>' in page
    assert '<textarea id="param-options"' in page
    assert 'id="param-maybe" name="param:maybe" type="number"' in page


async def test_a_run_started_from_the_form_gets_typed_parameters_and_job_variables(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, deployment: dict[str, object]
) -> None:
    r = await submit(
        browser,
        deployment,
        **{
            "param:n": "3",
            "param:ratio": "0.25",
            "param:mode": '"slow"',
            "param:dry_run": "true",
            "param:options": '{"a": [1, 2]}',
            "param:name": "",
            "job_variables": '{"pip_packages": ["pandas"], "memory_gib": 2}',
            "run_name": "from-the-form",
        },
    )
    assert r.status_code == 303, r.text
    run_id = r.headers["location"].removeprefix("/runs/")
    run = (await client.get(f"/flow-runs/{run_id}")).json()
    assert run["name"] == "from-the-form"
    assert run["parameters"] == {
        "n": 3,
        "ratio": 0.25,
        "mode": "slow",
        "dry_run": True,
        "options": {"a": [1, 2]},
        "name": "world",  # left empty: the deployment's default applies
    }
    assert run["job_variables"]["pip_packages"] == ["pandas"]
    assert run["job_variables"]["memory_gib"] == 2
    page = await browser.get(r.headers["location"])
    assert "Started run from-the-form." in page.text


async def test_text_that_is_not_the_parameters_type_is_named_beside_its_input(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, deployment: dict[str, object]
) -> None:
    r = await submit(browser, deployment, **{"param:n": "three", "param:options": "{not json"})
    assert r.status_code == 422
    assert '<p class="field-error" id="param-n-error">expected a whole number</p>' in r.text
    assert 'aria-describedby="param-n-error"' in r.text
    assert "is not valid JSON" in r.text
    assert 'value="three"' in r.text  # what was typed is kept
    assert await _runs(client, deployment) == []


async def test_a_value_the_schema_refuses_is_reported_by_ops_beside_the_field(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, deployment: dict[str, object]
) -> None:
    r = await submit(browser, deployment, **{"param:n": "1", "param:options": "[1, 2]"})
    assert r.status_code == 422
    assert 'id="param-options-error">expected object, got list' in r.text
    r = await submit(browser, deployment)
    assert r.status_code == 422
    assert 'id="param-n-error">is required' in r.text
    assert await _runs(client, deployment) == []


async def test_job_variables_must_be_a_json_object_within_the_pools_policy(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, deployment: dict[str, object]
) -> None:
    r = await submit(browser, deployment, **{"param:n": "1", "job_variables": "[1]"})
    assert r.status_code == 422
    assert 'id="job_variables-error">expected a JSON object' in r.text
    r = await submit(browser, deployment, **{"param:n": "1", "job_variables": '{"memory_gib": 64}'})
    assert r.status_code == 422
    assert 'id="job_variables-error">memory_gib: must be at most 16' in r.text
    r = await submit(browser, deployment, **{"param:n": "1", "job_variables": '{"gpu": 1}'})
    assert "gpu: is not a known field" in r.text
    assert await _runs(client, deployment) == []


async def test_a_deployment_without_a_schema_runs_with_no_parameters(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await make_pool(client)
    dep = await make_deployment(client, parameter_schema={})
    page = (await browser.get(f"/deployments/{dep['id']}/run")).text
    assert "This deployment takes no parameters." in page
    r = await submit(browser, dep)
    assert r.status_code == 303
