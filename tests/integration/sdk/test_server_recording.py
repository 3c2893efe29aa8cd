"""The SDK against a real ``flowyard server start`` process: runs, task runs, logs,
variables, secrets and deployments recorded through the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowyard import flow, get_run_logger, sdk, task
from flowyard.client import SyncClient, ValidationError, get_sync_client
from flowyard.client import sdk_integration as integration
from flowyard.schemas import work_pools as wp
from flowyard.sdk import _backends
from tests.acceptance.git_server import GitRemote, serve_directory
from tests.acceptance.server_process import ServerProcess, running_server


@pytest.fixture(scope="module")
def server_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sdk-server") / "home"


@pytest.fixture(scope="module")
def server(server_home: Path) -> Iterator[ServerProcess]:
    with running_server(server_home, "--no-dispatcher") as process:
        yield process


@pytest.fixture
def api(server: ServerProcess, server_home: Path) -> Iterator[SyncClient]:
    with get_sync_client(home=server_home, required=True) as client:
        yield client


@pytest.fixture(autouse=True)
def recording(
    server: ServerProcess, server_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The SDK finds the server through its credentials file, as a user's script would."""
    monkeypatch.setenv("FLOWYARD_HOME", str(server_home))
    monkeypatch.delenv("FLOWYARD_API_URL", raising=False)
    monkeypatch.delenv("FLOWYARD_RUN_ID", raising=False)
    _backends.reset_server_integration()
    previous = sdk.set_result_store(sdk.InMemoryResultStore())
    yield
    integration.uninstall()
    sdk.set_result_store(previous)
    _backends.reset_server_integration()


@task(retries=1, retry_delay_seconds=0)
def flaky(attempts: list[int]) -> int:
    attempts.append(1)
    if len(attempts) == 1:
        raise RuntimeError("first try fails")
    get_run_logger().info("worked on try %d", len(attempts))
    return len(attempts)


@task
def double(x: int) -> int:
    return 2 * x


@flow
def child(x: int) -> int:
    return double(x)


@flow(log_prints=True)
def recorded(n: int = 3) -> int:
    total = flaky([])
    for i in range(n):
        total += double(i)
    total += child(10)
    print(f"total is {total}")
    return total


def test_a_flow_run_its_tasks_states_and_logs_are_recorded(api: SyncClient) -> None:
    state = recorded(n=3, return_state=True)
    assert state.is_completed()
    run = api.read_flow_run(state.state_details.flow_run_id)
    assert (run.flow_name, run.state_type.value, run.parameters) == (
        "recorded",
        "COMPLETED",
        {"n": 3},
    )
    assert [s.type.value for s in api.read_flow_run_states(run.id)] == [
        "PENDING",
        "RUNNING",
        "COMPLETED",
    ]
    tasks = api.list_task_runs(run.id, limit=50).items
    by_name = {t.name.rsplit("-", 1)[0]: t for t in tasks}
    assert sorted(t.name.rsplit("-", 1)[0] for t in tasks) == [
        "child",
        "double",
        "double",
        "double",
        "flaky",
    ]
    assert by_name["flaky"].run_count == 2
    assert {t.state_type.value for t in tasks} == {"COMPLETED"}
    flaky_states = [s.name for s in api.read_task_run_states(by_name["flaky"].id)]
    assert "AwaitingRetry" in flaky_states or "Retrying" in flaky_states
    messages = [line.message for line in api.read_logs(run.id, limit=200).items]
    assert "total is 28" in messages, messages
    assert "worked on try 2" in messages, messages
    subflows = [
        r for r in api.list_flow_runs(limit=50).items if r.parent_task_run_id == by_name["child"].id
    ]
    assert [(r.flow_name, r.state_type.value) for r in subflows] == [("child", "COMPLETED")]


def test_a_failing_flow_is_recorded_failed_with_the_error(api: SyncClient) -> None:
    @flow
    def broken() -> None:
        raise ValueError("the input file is empty")

    state = broken(return_state=True)
    assert state.is_failed()
    run = api.read_flow_run(state.state_details.flow_run_id)
    assert run.state_type.value == "FAILED"
    assert "the input file is empty" in run.state_message


def test_a_thousand_tasks_are_recorded_in_batches(api: SyncClient) -> None:
    @flow
    def many() -> int:
        return sum(double(i) for i in range(1000))

    state = many(return_state=True)
    assert state.result() == 999_000
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    seen = sum(1 for _ in api.iter_task_runs(run_id))
    assert seen == 1000


def test_every_task_runs_state_history_and_lines_are_recorded(api: SyncClient) -> None:
    @flow
    def three() -> int:
        return sum(double(i) for i in range(3))

    state = three(return_state=True)
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    tasks = api.list_task_runs(run_id).items
    assert len(tasks) == 3
    for task_run in tasks:
        history = api.read_task_run_states(task_run.id)
        assert [(s.type.value, s.name) for s in history] == [
            ("PENDING", "Pending"),
            ("RUNNING", "Running"),
            ("COMPLETED", "Completed"),
        ]
        assert [s.timestamp for s in history] == sorted(s.timestamp for s in history)
        assert task_run.start_time == history[1].timestamp
        assert task_run.end_time == history[2].timestamp
    lines = api.read_logs(run_id, limit=100).items
    assert {line.task_run_id for line in lines if line.task_run_id} == {t.id for t in tasks}


def test_variables_and_secrets_go_to_the_server(api: SyncClient) -> None:
    name = f"v{uuid.uuid4().hex[:8]}"
    sdk.Variable.set(name, {"rows": 3})
    assert api.read_variable(name).value == {"rows": 3}
    assert sdk.Variable.get(name) == {"rows": 3}
    with pytest.raises(ValueError, match="already exists"):
        sdk.Variable.set(name, 4)
    assert sdk.Variable.unset(name) is True
    assert sdk.Variable.get(name, default="gone") == "gone"

    sdk.Secret(value="s3cret").save(f"{name}-secret")
    assert api.read_secret_value(f"{name}-secret").value == "s3cret"
    loaded = sdk.Secret.load(f"{name}-secret")
    assert isinstance(loaded, sdk.Secret)
    assert loaded.get() == "s3cret"


def test_deploy_from_git_and_run_deployment_use_the_server(api: SyncClient) -> None:
    pool = f"pool-{uuid.uuid4().hex[:6]}"
    api.create_work_pool(wp.WorkPoolCreate(name=pool, type=wp.WorkPoolType.MANAGED))
    deployment_id = flow.from_source(
        source="https://git.example.com/org/repo.git", entrypoint="flows/etl.py:etl_flow"
    ).deploy(
        name="nightly",
        work_pool_name=pool,
        job_variables={"pip_packages": ["six"]},
        cron="0 3 * * *",
        print_next_steps=False,
    )
    saved = api.read_deployment(deployment_id)
    assert (saved.full_name, saved.work_pool_name) == ("etl-flow/nightly", pool)
    assert saved.source["url"] == "https://git.example.com/org/repo.git"
    assert saved.job_variables == {"pip_packages": ["six"]}
    assert [s.schedule.get("cron") for s in saved.schedules] == ["0 3 * * *"]

    run = sdk.run_deployment("etl-flow/nightly", parameters={"n": 2}, timeout=0)
    assert run.deployment_id == deployment_id
    assert run.state.type in {sdk.StateType.SCHEDULED, sdk.StateType.PENDING}
    assert api.read_flow_run(run.id).parameters == {"n": 2}


def test_an_unreachable_server_never_fails_the_flow(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOWYARD_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("FLOWYARD_API_KEY", "fy_x_y")
    _backends.reset_server_integration()

    @flow
    def offline() -> int:
        return double(21)

    assert offline() == 42
    assert offline() == 42  # and the second run does not wait on the server either
    err = capfd.readouterr().err
    assert "could not record a flow run" in err
    assert "127.0.0.1:9" in err


def test_deploy_reads_the_flows_name_and_schema_from_its_git_source(
    api: SyncClient, tmp_path: Path
) -> None:
    (tmp_path / "git").mkdir()
    remote = GitRemote(tmp_path / "git", "flows")
    remote.commit(
        {
            "flows/etl.py": (
                "import pandas  # not installed here: the module is read, not imported\n"
                "from flowyard import flow\n\n"
                "@flow(name='nightly-etl', log_prints=True)\n"
                "def etl_flow(rows: int = 10, table: str = 'events', when: pandas.Timestamp = None):\n"
                '    """Load the day\'s events."""\n'
                "    return rows\n"
            )
        }
    )
    pool = f"pool-{uuid.uuid4().hex[:6]}"
    api.create_work_pool(wp.WorkPoolCreate(name=pool, type=wp.WorkPoolType.MANAGED))
    with serve_directory(tmp_path / "git") as base:
        deployment_id = flow.from_source(f"{base}/flows.git", "flows/etl.py:etl_flow").deploy(
            name="daily", work_pool_name=pool, print_next_steps=False
        )
    saved = api.read_deployment(deployment_id)
    assert saved.full_name == "nightly-etl/daily"
    assert saved.description == "Load the day's events."
    properties = saved.parameter_schema["properties"]
    assert properties["rows"] == {"default": 10, "position": 0, "title": "rows", "type": "integer"}
    assert properties["table"]["type"] == "string"
    assert "type" not in properties["when"]  # an annotation it cannot read accepts any value
    with pytest.raises(ValidationError, match="rows"):
        sdk.run_deployment("nightly-etl/daily", parameters={"rows": "many"}, timeout=0)


def test_serve_runs_the_served_flows_runs_in_this_process(api: SyncClient) -> None:
    import threading
    import time

    from flowyard.client.sdk_integration import Server, _LazyClient
    from flowyard.schemas import flow_runs as fr
    from flowyard.sdk._deployments import ServedDeployment, build_spec

    seen: list[int] = []

    @flow(name=f"served-{uuid.uuid4().hex[:6]}")
    def served(n: int = 1) -> int:
        seen.append(n)
        get_run_logger().info("served run with n=%d", n)
        return n * 2

    spec = build_spec(served, "here", parameters={"n": 2})
    server = Server(_LazyClient(), [ServedDeployment(spec=spec, flow=served)], limit=2)
    server.register()
    loop = threading.Thread(target=server.loop, daemon=True)
    loop.start()
    try:
        deployment = api.read_deployment_by_name(f"{served.name}/here")
        assert deployment.work_pool_name is None
        runs = [
            api.create_flow_run(deployment.id, fr.FlowRunCreate(parameters={"n": n})).id
            for n in (3, 4, 5)
        ]
        deadline = time.monotonic() + 60
        states: list[str] = []
        while time.monotonic() < deadline:
            states = [api.read_flow_run(r).state_type.value for r in runs]
            if all(s == "COMPLETED" for s in states):
                break
            time.sleep(0.1)
    finally:
        server.stop.set()
        loop.join(10)
    assert states == ["COMPLETED"] * 3
    assert sorted(seen) == [3, 4, 5]
    logs = [line.message for line in api.read_logs(runs[0]).items]
    assert "served run with n=3" in logs
    claimed = api.read_flow_run_states(runs[0])
    assert [s.type.value for s in claimed] == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]


def test_code_on_this_machine_is_refused_by_a_server_that_does_not_allow_local_sources(
    api: SyncClient, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows" / "etl.py").write_text(
        "from flowyard import flow\n\n@flow\ndef etl_flow(n: int = 1):\n    return n\n"
    )
    pool = f"pool-{uuid.uuid4().hex[:6]}"
    api.create_work_pool(wp.WorkPoolCreate(name=pool, type=wp.WorkPoolType.MANAGED))
    local = flow.from_source(str(project), "flows/etl.py:etl_flow")
    with pytest.raises(ValidationError, match="FLOWYARD_ALLOW_LOCAL_SOURCES") as refused:
        local.deploy(name="here", work_pool_name=pool, print_next_steps=False)
    assert "push the code to a git host" in str(refused.value)

    # A file:// URL naming a git repository is deployed as that repository, and refused too.
    (tmp_path / "git").mkdir()
    remote = GitRemote(tmp_path / "git", "flows")
    remote.commit({"flows/etl.py": (project / "flows" / "etl.py").read_text()})
    from_file = flow.from_source(f"file://{remote.bare}", "flows/etl.py:etl_flow")
    assert from_file.source.kind == "git"
    with pytest.raises(ValidationError, match="a file:// repository is refused"):
        from_file.deploy(name="here", work_pool_name=pool, print_next_steps=False)
    assert api.list_deployments(work_pool=pool) == []


def test_deploying_to_a_paused_pool_warns_once(
    api: SyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    pool = f"pool-{uuid.uuid4().hex[:6]}"
    api.create_work_pool(wp.WorkPoolCreate(name=pool, type=wp.WorkPoolType.MANAGED))
    api.update_work_pool(pool, wp.WorkPoolUpdate(paused=True))
    flow.from_source(
        source="https://git.example.com/org/repo.git", entrypoint="flows/etl.py:etl_flow"
    ).deploy(name="paused", work_pool_name=pool, print_next_steps=False)
    out, err = capfd.readouterr()
    said = out + err
    assert said.count(f"work pool {pool!r} is paused") == 1, said
    assert f"Warning: deployment 'etl-flow/paused': work pool {pool!r} is paused" in out


def test_artifacts_are_published_with_their_run_and_task_run(api: SyncClient) -> None:
    from flowyard.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_progress_artifact,
        create_table_artifact,
        update_progress_artifact,
    )

    @task
    def tabulate(n: int) -> None:
        create_table_artifact([{"i": i, "square": i * i} for i in range(n)], key="squares")

    @flow
    def reporting(n: int = 3) -> uuid.UUID:
        progress = create_progress_artifact(0, description="starting")
        tabulate(n)
        create_markdown_artifact(f"# {n} squares", key="square-report")
        update_progress_artifact(progress, 100, description="done")  # type: ignore[arg-type]
        return progress  # type: ignore[return-value]

    state = reporting(return_state=True)  # type: ignore[call-arg]
    run_id = state.state_details.flow_run_id
    made = {a.type: a for a in api.list_artifacts(flow_run_id=run_id)}
    assert set(made) == {"progress", "table", "markdown"}
    assert (made["progress"].data, made["progress"].description) == (100, "done")
    assert made["table"].data == {
        "columns": ["i", "square"],
        "rows": [[0, 0], [1, 1], [2, 4]],
    }
    assert made["table"].task_run_id is not None
    assert made["table"].task_run_id in {t.id for t in api.iter_task_runs(run_id)}
    assert made["markdown"].task_run_id is None
    assert next(a.data for a in api.list_artifacts(key="square-report")) == "# 3 squares"
    with pytest.raises(ValueError, match=r"link artifact: data\.url: expected an http:// or https"):
        create_link_artifact("javascript:alert(1)")


def test_global_concurrency_limits_hold_across_threads_and_free_every_slot(
    api: SyncClient,
) -> None:
    import threading
    import time

    from flowyard.concurrency import ConcurrencySlotAcquisitionError
    from flowyard.concurrency.sync import concurrency, rate_limit
    from flowyard.schemas.concurrency import ConcurrencyLimitCreate

    api.create_concurrency_limit(ConcurrencyLimitCreate(name="warehouse", limit=2))
    api.create_concurrency_limit(
        ConcurrencyLimitCreate(name="partner-api", limit=1, slot_decay_per_second=10)
    )
    inside, most = [0], [0]
    lock = threading.Lock()

    @task
    def load(i: int) -> int:
        with concurrency("warehouse", lease_duration=30):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1
        rate_limit("partner-api")
        return i

    @flow
    def loads() -> list[int]:
        return [f.result() for f in load.map(range(6))]

    started = time.monotonic()
    assert loads() == list(range(6))
    assert 1 <= most[0] <= 2
    assert time.monotonic() - started >= 0.45  # six takes of one slot freed at 10/s
    assert api.read_concurrency_limit("warehouse").active_slots == 0
    strict = concurrency("no-such-limit", strict=True)
    with pytest.raises(ConcurrencySlotAcquisitionError, match="no concurrency limit named"):
        strict.__enter__()


def test_a_tag_concurrency_limit_throttles_the_tasks_with_that_tag(api: SyncClient) -> None:
    import threading
    import time

    from flowyard.schemas.concurrency import ConcurrencyLimitCreate
    from flowyard.sdk import _concurrency

    _concurrency._known = (float("-inf"), None, frozenset())  # no names read before the limit
    api.create_concurrency_limit(ConcurrencyLimitCreate(name="tag:small-db", limit=1))
    inside, most = [0], [0]
    lock = threading.Lock()

    @task(tags=["small-db"])
    def write(i: int) -> int:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.03)
        with lock:
            inside[0] -= 1
        return i

    @flow
    def writes() -> list[int]:
        return [f.result() for f in write.map(range(4))]

    assert writes() == list(range(4))
    assert most[0] == 1
    assert api.read_concurrency_limit("tag:small-db").active_slots == 0
