"""What the client sends: the fields the caller set, nested values whole."""

from __future__ import annotations

from flowyard.client._base import body_of
from flowyard.schemas import deployments as dep


def test_an_update_sends_only_the_fields_the_caller_set() -> None:
    assert body_of(dep.DeploymentUpdate(paused=True)) == {"paused": True}
    assert body_of(dep.DeploymentUpdate(concurrency_limit=None)) == {"concurrency_limit": None}


def test_a_nested_model_is_sent_whole_with_its_discriminator() -> None:
    spec = dep.DeploymentCreate(
        flow_name="etl",
        name="daily",
        entrypoint="flows/etl.py:etl",
        source=dep.GitSourceSpec(url="https://example.com/repo.git"),
    )
    body = body_of(spec)
    assert isinstance(body, dict)
    assert body["source"]["kind"] == "git"
    assert "tags" not in body
