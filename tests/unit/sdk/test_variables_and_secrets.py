from __future__ import annotations

import asyncio
import pickle

import pytest

from flowyard import Secret, Variable, flow
from flowyard.blocks.system import Secret as BlockSecret
from flowyard.sdk import (
    InMemorySecrets,
    InMemoryVariables,
    NoServerConfigured,
    ObjectNotFound,
    set_secret_backend,
    set_variable_backend,
)
from flowyard.variables import Variable as ModuleVariable


def test_prefect_style_import_paths_give_the_same_classes() -> None:
    assert BlockSecret is Secret
    assert ModuleVariable is Variable


def test_variables_without_a_server_raise_a_clear_error() -> None:
    with pytest.raises(NoServerConfigured, match=r"set FLOWYARD_API_URL.*read variable 'region'"):
        Variable.get("region", default="eu")


def test_secrets_without_a_server_raise_a_clear_error() -> None:
    with pytest.raises(NoServerConfigured, match="load secret 'db-password'"):
        Secret.load("db-password")


def test_variables_are_read_and_written_through_the_backend() -> None:
    set_variable_backend(InMemoryVariables({"region": "eu", "limits": {"cpu": 2}}))
    assert Variable.get("region") == "eu"
    assert Variable.get("limits") == {"cpu": 2}
    assert Variable.get("missing") is None
    assert Variable.get("missing", default=5) == 5
    created = Variable.set("threshold", 0.5, tags=["ops"])
    assert created == Variable("threshold", 0.5, ("ops",))
    with pytest.raises(ValueError, match="already exists"):
        Variable.set("threshold", 0.7)
    Variable.set("threshold", 0.7, overwrite=True)
    assert Variable.get("threshold") == 0.7
    assert Variable.unset("threshold") is True
    assert Variable.unset("threshold") is False


def test_variable_values_must_be_json() -> None:
    set_variable_backend(InMemoryVariables())
    with pytest.raises(ValueError, match="JSON-serializable"):
        Variable.set("bad", {1, 2})  # type: ignore[arg-type]


def test_variables_in_async_code_are_awaited() -> None:
    set_variable_backend(InMemoryVariables({"region": "eu"}))

    @flow
    async def pipeline() -> object:
        return await Variable.get("region")  # type: ignore[misc]

    assert asyncio.run(pipeline()) == "eu"


def test_secrets_load_and_never_show_their_value() -> None:
    set_secret_backend(InMemorySecrets({"db-password": "hunter2"}))
    secret = Secret.load("db-password")
    assert isinstance(secret, Secret)
    assert secret.get() == "hunter2"
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert secret.name == "db-password"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)
    with pytest.raises(ObjectNotFound, match="'nope' does not exist"):
        Secret.load("nope")


def test_secrets_can_be_saved_and_loaded_in_async_code() -> None:
    backend = InMemorySecrets()
    set_secret_backend(backend)

    async def main() -> str:
        await Secret("s3cr3t").save("api-token")  # type: ignore[misc]
        loaded = await Secret.load("api-token")  # type: ignore[misc]
        return str(loaded.get())

    assert asyncio.run(main()) == "s3cr3t"
    with pytest.raises(ValueError, match="already exists"):
        Secret("other").save("api-token")
