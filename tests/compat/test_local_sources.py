"""Loading flows from local directories, and the local result store on disk."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowyard.sdk import (
    EntrypointError,
    Flow,
    FlowScriptError,
    LocalResultStore,
    RecordingDeploymentBackend,
    ResultRecord,
    load_flow_from_entrypoint,
    set_deployment_backend,
)
from flowyard.sdk._results import ResultStoreError

from .conftest import FLOWS


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_flow_file_can_import_its_sibling_modules(tmp_path: Path) -> None:
    write(tmp_path, "pipelines/helpers.py", "def double(x):\n    return 2 * x\n")
    write(
        tmp_path,
        "pipelines/main.py",
        "from flowyard import flow\nfrom helpers import double\n\n"
        "@flow\ndef run(x: int = 2):\n    return double(x)\n",
    )
    loaded = load_flow_from_entrypoint(tmp_path, "pipelines/main.py:run")
    assert loaded(5) == 10
    assert loaded.entrypoint == "pipelines/main.py:run"


def test_loading_refuses_files_outside_the_root_and_non_flows(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("from flowyard import flow\n@flow\ndef f():\n    return 1\n")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link.py")
    with pytest.raises(EntrypointError, match="outside the source root"):
        load_flow_from_entrypoint(root, "link.py:f")
    with pytest.raises(EntrypointError, match="no such file"):
        load_flow_from_entrypoint(root, "missing.py:f")
    write(root, "plain.py", "def f():\n    return 1\n")
    with pytest.raises(EntrypointError, match="not a flow; decorate it with @flow"):
        load_flow_from_entrypoint(root, "plain.py:f")
    with pytest.raises(EntrypointError, match="has no attribute 'g'"):
        load_flow_from_entrypoint(root, "plain.py:g")
    write(root, "broken.py", "raise RuntimeError('import-time failure')\n")
    with pytest.raises(FlowScriptError, match="import-time failure"):
        load_flow_from_entrypoint(root, "broken.py:f")


def test_from_source_with_a_local_directory_loads_a_callable_deployable_flow() -> None:
    loaded = Flow.from_source(FLOWS, "parallel_map.py:portfolio_value")
    assert isinstance(loaded, Flow)
    assert loaded(["MSFT"]) == 410.0
    backend = RecordingDeploymentBackend()
    previous = set_deployment_backend(backend)
    try:
        loaded.deploy("prices", work_pool_name="local-pool", print_next_steps=False)
    finally:
        set_deployment_backend(previous)
    spec = backend.applied[0]
    assert spec.source is not None
    assert spec.source.kind == "local"
    assert spec.entrypoint == "parallel_map.py:portfolio_value"
    assert spec.parameter_schema is not None
    assert spec.parameter_schema["required"] == ["symbols"]


def test_the_local_result_store_round_trips_and_expires(isolated_sdk: Path) -> None:
    store = LocalResultStore()
    assert store.root == isolated_sdk / "results"
    now = datetime.now(UTC)
    store.write(ResultRecord(key="abc/def", value={"rows": [1, 2]}, created=now))
    assert store.read("abc/def").value == {"rows": [1, 2]}  # type: ignore[union-attr]
    store.write(
        ResultRecord(key="old", value=1, created=now, expiration=now - timedelta(seconds=1))
    )
    assert store.read("old") is None
    assert store.read("never-written") is None
    json_store = LocalResultStore(isolated_sdk / "json", serializer="json")
    json_store.write(ResultRecord(key="k", value=[1, "a"], created=now))
    assert json_store.read("k").value == [1, "a"]  # type: ignore[union-attr]
    with pytest.raises(ResultStoreError, match="not JSON-serializable"):
        json_store.write(ResultRecord(key="k", value={1, 2}, created=now))
    with pytest.raises(ResultStoreError, match="not valid"):
        store.read("../escape")
    assert not list((isolated_sdk / "results").glob("**/*.tmp"))


@pytest.mark.parametrize(
    ("file_name", "content"),
    [
        ("settings.toml", 'api_url = "http://127.0.0.1:4280/api"\n'),
        (
            "profiles.toml",
            'active = "local"\n\n[profiles.local]\napi_url = "http://127.0.0.1:4280/api"\n',
        ),
        ("credentials", '{"api_url": "http://0.0.0.0:4280/api", "api_key": "fy_x"}'),
    ],
)
def test_a_server_is_detected_from_the_same_files_as_the_client(
    isolated_sdk: Path, file_name: str, content: str
) -> None:
    from flowyard.sdk import configured_api_url

    assert configured_api_url() is None
    isolated_sdk.mkdir(parents=True, exist_ok=True)
    (isolated_sdk / file_name).write_text(content)
    assert configured_api_url() is not None
