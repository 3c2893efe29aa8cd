from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from flowyard import GitRepository, RemoteStorage, flow, run_deployment
from flowyard.sdk import (
    EntrypointError,
    Flow,
    NoServerConfigured,
    ParameterTypeError,
    RecordingDeploymentBackend,
    RecordingReporter,
    ScheduleSpec,
    Secret,
    SourcedFlow,
    StateChanged,
    TaskRunCreated,
    default_serve_limit,
    parse_entrypoint,
    serve,
    set_deployment_backend,
)


@flow
def forecast(city: str, days: int = 3) -> str:
    """Forecast a city.

    Args:
        city: Which city.
    """
    return f"{city}:{days}"


@pytest.fixture
def backend() -> RecordingDeploymentBackend:
    recording = RecordingDeploymentBackend()
    set_deployment_backend(recording)
    return recording


def test_entrypoints_must_be_relative_py_paths_with_a_function() -> None:
    assert str(parse_entrypoint("flows/etl.py:main")) == "flows/etl.py:main"
    assert parse_entrypoint("etl.py:Pipeline.run").function == "Pipeline.run"
    for bad, reason in [
        ("etl.py", "must look like"),
        ("/abs/etl.py:main", "not absolute"),
        ("../etl.py:main", "must not contain '..'"),
        ("flows/../../etl.py:main", "must not contain '..'"),
        ("etl.txt:main", "must name a .py file"),
        ("etl.py:1main", "not a Python function name"),
        ("C:/etl.py:main", "not absolute"),
        ("flows\\etl.py:main", "use '/'"),
    ]:
        with pytest.raises(EntrypointError, match=reason):
            parse_entrypoint(bad)


def test_git_repository_checks_its_url_and_commit_and_hides_credentials() -> None:
    repo = GitRepository(
        url="https://github.com/acme/flows.git",
        branch="main",
        credentials={"access_token": Secret("ghp_very_secret")},
    )
    assert "ghp_very_secret" not in repr(repo)
    assert "credentials=<hidden>" in repr(repo)
    pinned = GitRepository("git@github.com:acme/flows.git", commit_sha="a1b2c3d")
    assert pinned.commit == "a1b2c3d"
    with pytest.raises(ValueError, match="not a git URL"):
        GitRepository(url="ftp://example.com/repo")
    with pytest.raises(ValueError, match="not a commit hash"):
        GitRepository(url="https://github.com/acme/flows", commit="main")
    masked = GitRepository(url="https://user:token@github.com/acme/flows")
    assert "token" not in repr(masked)


def test_from_source_with_a_git_url_gives_a_deployable_flow(
    backend: RecordingDeploymentBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = Flow.from_source("https://github.com/acme/flows.git", "pipelines/etl.py:run_etl")
    assert isinstance(remote, SourcedFlow)
    assert remote.name == "run-etl"
    deployment_id = remote.deploy(
        name="nightly",
        work_pool_name="my-managed-pool",
        job_variables={"pip_packages": ["pandas"]},
        cron="0 2 * * *",
        tags=["etl"],
    )
    spec = backend.applied[0]
    assert isinstance(deployment_id, uuid.UUID)
    assert spec.source is not None
    assert (spec.source.kind, spec.source.url) == ("git", "https://github.com/acme/flows.git")
    assert spec.entrypoint == "pipelines/etl.py:run_etl"
    assert spec.work_pool_name == "my-managed-pool"
    assert spec.job_variables == {"pip_packages": ["pandas"]}
    assert spec.schedules == (ScheduleSpec(cron="0 2 * * *"),)
    assert spec.tags == ("etl",)
    out = capsys.readouterr().out
    assert "Successfully created deployment 'run-etl/nightly'" in out
    assert "$ flowyard deployment run 'run-etl/nightly'" in out
    with pytest.raises(Exception, match="not loaded in this process"):
        remote()


def test_from_source_accepts_git_repositories_and_storage_urls(
    backend: RecordingDeploymentBackend,
) -> None:
    repo = GitRepository(url="https://github.com/acme/flows", branch="release")
    from_repo = Flow.from_source(repo, "etl.py:main")
    assert isinstance(from_repo, SourcedFlow)
    assert from_repo.source.branch == "release"
    bucket = Flow.from_source("s3://bucket/flows", "etl.py:main")
    assert isinstance(bucket, SourcedFlow)
    assert bucket.source.kind == "storage"
    with pytest.raises(ValueError, match="unsupported scheme"):
        Flow.from_source("ftp://host/flows", "etl.py:main")
    with pytest.raises(EntrypointError):
        Flow.from_source("https://github.com/acme/flows", "../etl.py:main")


def test_a_file_url_naming_a_git_repository_is_that_repository(
    backend: RecordingDeploymentBackend, tmp_path: Path
) -> None:
    (tmp_path / "work" / ".git").mkdir(parents=True)
    for part in ("objects", "refs"):
        (tmp_path / "bare.git" / part).mkdir(parents=True)
    (tmp_path / "bare.git" / "HEAD").write_text("ref: refs/heads/main\n")
    for repository in ("work", "bare.git"):
        sourced = Flow.from_source(f"file://{tmp_path / repository}", "etl.py:main")
        assert isinstance(sourced, SourcedFlow)
        assert sourced.source.kind == "git"
        assert sourced.source.url == f"file://{tmp_path / repository}"


def test_remote_storage_keeps_credentials_apart_from_fsspec_options(
    backend: RecordingDeploymentBackend,
) -> None:
    storage = RemoteStorage(
        "s3://bucket/flows",
        key="AKIA-example",
        secret=Secret("s3cret-value"),
        client_kwargs={"endpoint_url": "http://minio:9000"},
    )
    assert "s3cret" not in repr(storage)
    assert "AKIA" not in repr(storage)
    sourced = Flow.from_source(storage, "etl.py:main")
    assert isinstance(sourced, SourcedFlow)
    assert sourced.source.kind == "storage"
    assert dict(sourced.source.options) == {"client_kwargs": {"endpoint_url": "http://minio:9000"}}
    assert set(sourced.source.credentials or {}) == {"key", "secret"}
    assert "s3cret" not in repr(sourced.source)
    with pytest.raises(ValueError, match="must be a bucket URL"):
        RemoteStorage("https://example.com/flows")
    with pytest.raises(TypeError, match="'key' must be a string or a Secret"):
        RemoteStorage("gs://bucket/flows", key=42)


def test_deploy_with_an_image_sets_the_runtime_job_variable(
    backend: RecordingDeploymentBackend,
) -> None:
    remote = Flow.from_source("s3://bucket/flows", "etl.py:main")
    remote.deploy("d", work_pool_name="pool", image="python3.12", print_next_steps=False)
    assert backend.applied[0].job_variables == {"image": "python3.12"}


def test_to_deployment_checks_parameters_against_the_flow() -> None:
    spec = forecast.to_deployment("daily", parameters={"city": "Oslo", "days": "5"}, interval=3600)
    assert spec.full_name == "forecast/daily"
    assert spec.schedules == (ScheduleSpec(interval=3600.0),)
    assert spec.parameter_schema is not None
    assert spec.parameter_schema["required"] == ["city"]
    with pytest.raises(ValueError, match="'town' is not a parameter of flow 'forecast'"):
        forecast.to_deployment("daily", parameters={"town": "Oslo"})
    with pytest.raises(ParameterTypeError, match="days"):
        forecast.to_deployment("daily", parameters={"city": "Oslo", "days": "many"})


def test_schedules_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match="not a valid cron expression"):
        forecast.to_deployment("d", cron="every day")
    with pytest.raises(ValueError, match="interval must be positive"):
        forecast.to_deployment("d", interval=0)
    with pytest.raises(ValueError, match="rrule"):
        forecast.to_deployment("d", rrule="FREQ=SOMETIMES")
    with pytest.raises(ValueError, match="exactly one"):
        ScheduleSpec(cron="* * * * *", interval=5)
    both = forecast.to_deployment(
        "d", cron=["0 * * * *", "30 * * * *"], interval=timedelta(hours=1)
    )
    assert len(both.schedules) == 3
    with pytest.raises(ValueError, match="deployment name"):
        forecast.to_deployment("a/b")


def test_deploy_without_a_server_says_how_to_configure_one() -> None:
    remote = Flow.from_source("https://github.com/acme/flows", "etl.py:main")
    with pytest.raises(
        NoServerConfigured, match="no Flowyard server configured: set FLOWYARD_API_URL"
    ):
        remote.deploy("d", work_pool_name="pool")


def test_deploying_a_flow_without_a_source_explains_from_source(
    backend: RecordingDeploymentBackend,
) -> None:
    with pytest.raises(ValueError, match=r"Flow.from_source"):
        forecast.deploy("d", work_pool_name="pool")


def test_serve_hands_the_flow_and_a_default_cap_to_the_backend(
    backend: RecordingDeploymentBackend,
) -> None:
    forecast.serve("local", cron="*/5 * * * *")
    (served, limit), *_ = backend.served
    assert served[0].flow is forecast
    assert served[0].spec.name == "local"
    assert limit == default_serve_limit()
    assert limit >= 4
    serve(forecast.to_deployment("a"), forecast.to_deployment("b"), limit=2)
    assert backend.served[1][1] == 2


def test_serve_without_a_server_fails_clearly() -> None:
    with pytest.raises(NoServerConfigured):
        forecast.serve()


def test_run_deployment_sends_a_checked_request(backend: RecordingDeploymentBackend) -> None:
    run = run_deployment(
        "forecast/daily",
        parameters={"city": "Rome"},
        timeout=0,
        tags=["adhoc"],
        idempotency_key="k1",
    )
    request = backend.runs[0]
    assert request.name == "forecast/daily"
    assert request.parameters == {"city": "Rome"}
    assert request.tags == ("adhoc",)
    assert request.idempotency_key == "k1"
    assert request.parent_task_run_id is None
    assert run.deployment_name == "daily"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="flow-name/deployment-name"):
        run_deployment("just-a-name")


def test_run_deployment_inside_a_flow_is_linked_as_a_subflow(
    backend: RecordingDeploymentBackend, reporter: RecordingReporter
) -> None:
    @flow
    def orchestrator() -> None:
        run_deployment("forecast/daily", timeout=0)

    orchestrator()
    request = backend.runs[0]
    assert request.parent_task_run_id is not None
    stand_in = [e for e in reporter.of_type(StateChanged) if e.run_id == request.parent_task_run_id]
    assert [e.state.name for e in stand_in] == ["Pending", "Scheduled"]
    assert reporter.of_type(TaskRunCreated) == []


def test_run_deployment_returns_a_coroutine_inside_an_event_loop(
    backend: RecordingDeploymentBackend,
) -> None:
    async def main() -> str:
        run = await run_deployment("forecast/daily", timeout=0)  # type: ignore[misc]
        return str(run.flow_name)

    assert asyncio.run(main()) == "forecast"


def test_run_deployment_without_a_server_fails_clearly() -> None:
    with pytest.raises(NoServerConfigured, match="run deployment 'forecast/daily'"):
        run_deployment("forecast/daily")


def test_a_configured_server_without_a_client_integration_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flowyard.sdk import _backends

    monkeypatch.setattr(_backends, "SERVER_INTEGRATION_MODULE", "flowyard._no_such_integration")
    monkeypatch.setenv("FLOWYARD_API_URL", "http://127.0.0.1:4280/api")
    with pytest.raises(Exception, match="no client integration is installed"):
        run_deployment("forecast/daily")


def test_the_managed_execution_story_deploys_from_git_with_flow_from_source(
    backend: RecordingDeploymentBackend,
) -> None:
    flow.from_source(
        source="https://github.com/acme/managed-flows.git",
        entrypoint="flow.py:my_flow",
    ).deploy(
        name="test-managed-flow",
        work_pool_name="my-managed-pool",
        job_variables={"pip_packages": ["pandas"]},
    )
    spec = backend.applied[0]
    assert spec.full_name == "my-flow/test-managed-flow"
    assert spec.job_variables == {"pip_packages": ["pandas"]}


def test_a_flow_source_is_described_without_running_it() -> None:
    from flowyard.sdk._schema import describe_flow_source

    source = (
        "raise SystemExit('the module must not run')\n"
        "@flow\n"
        "async def load(day: 'datetime.date', retries: int = 2, since=make_default()):\n"
        "    pass\n"
    )
    described = describe_flow_source(source, "load")
    assert described is not None
    assert described.flow_name is None  # the decorator names none: the function's name applies
    properties = described.parameter_schema["properties"]
    assert properties["retries"]["default"] == 2
    assert properties["since"]["default"] is None  # a default that is not a literal
    assert described.parameter_schema["required"] == ["day"]
    assert describe_flow_source(source, "missing") is None
    assert describe_flow_source("def broken(:\n", "broken") is None
