"""The user's whole path, through real processes, as the README tells it.

``flowyard server start`` (SQLite, the managed dispatcher, the strict
sandbox); ``flowyard work-pool create p --type managed``; a Python script
doing ``flow.from_source(<git repo>, "flows/etl.py:etl").deploy(...,
job_variables={"pip_packages": ["six"]})``; ``flowyard deployment run ...
--watch`` showing the logs, exiting 0 on COMPLETED, the commit recorded.
Then the same with a ``requirements.txt`` installed by a pull step of
``flowyard.yaml`` (``flowyard deploy``), and with an S3 source.

The git repository is real and served over HTTP by this process; the
package comes from the real index; S3 is moto's server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowyard.client import SyncClient, get_sync_client
from flowyard.execution.host import probe_host
from tests.acceptance.git_server import GitRemote, serve_directory
from tests.acceptance.server_process import FLOWYARD, ServerProcess, running_server
from tests.conftest import missing_feature

ETL = """
from flowyard import flow, task, get_run_logger
from flowyard.artifacts import create_markdown_artifact, create_table_artifact


@task
def extract(n: int) -> list[int]:
    create_table_artifact([{"row": i} for i in range(n)], key="extracted")
    return list(range(n))


@task
def transform(rows: list[int]) -> int:
    import six

    get_run_logger().info("six %s is installed", six.__version__)
    return sum(rows)


@flow(name="etl", log_prints=True)
def etl(n: int = 3) -> int:
    total = transform(extract(n))
    print(f"loaded total={total}")
    create_markdown_artifact(f"loaded **{total}**", key="etl-report")
    return total
"""

PUSHED = """
from flowyard import flow


@flow(name="pushed", log_prints=True)
def pushed() -> None:
    print("running version {version}")
    with open(__file__, "a") as own:  # a run changes its own copy only
        own.write("# changed by a run\\n")
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("managed-path")


@pytest.fixture(scope="module")
def remote(root: Path) -> GitRemote:
    (root / "git").mkdir()
    return GitRemote(root / "git", "flows")


@pytest.fixture(scope="module")
def git_base(root: Path, remote: GitRemote) -> Iterator[str]:
    with serve_directory(root / "git") as base:
        yield base


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[ServerProcess]:
    found = probe_host()
    if found.missing():
        missing_feature("strict sandbox unavailable: " + "; ".join(found.missing()))
    with running_server(root / "home") as process:
        yield process


@pytest.fixture(scope="module")
def api(server: ServerProcess, root: Path) -> Iterator[SyncClient]:
    with get_sync_client(home=root / "home", required=True) as client:
        yield client


@pytest.fixture(scope="module")
def pool(server: ServerProcess, root: Path) -> str:
    result = cli(root, "work-pool", "create", "managed-pool", "--type", "managed")
    assert result.returncode == 0, result.stdout + result.stderr
    return "managed-pool"


def cli(
    root: Path, *args: str, cwd: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWYARD_HOME": str(root / "home"), "COLUMNS": "200"}
    env.pop("FLOWYARD_API_URL", None)
    return subprocess.run(
        [FLOWYARD, *args],
        cwd=cwd or root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def python(root: Path, code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWYARD_HOME": str(root / "home")}
    env.pop("FLOWYARD_API_URL", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd or root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def watch(root: Path, name: str, *params: str) -> subprocess.CompletedProcess[str]:
    args = [a for p in params for a in ("--param", p)]
    return cli(root, "deployment", "run", name, *args, "--watch", "--timeout", "240")


def test_from_git_with_pip_packages_runs_to_completed_with_its_commit(
    root: Path, remote: GitRemote, git_base: str, pool: str, api: SyncClient
) -> None:
    commit = remote.commit({"flows/etl.py": ETL}, "etl flow")
    deployed = python(
        root,
        f"""
        from flowyard import flow

        flow.from_source(
            source="{git_base}/flows.git", entrypoint="flows/etl.py:etl"
        ).deploy(name="nightly", work_pool_name="{pool}", job_variables={{"pip_packages": ["six"]}})
        """,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "flowyard deployment run 'etl/nightly'" in deployed.stdout

    watched = watch(root, "etl/nightly", "n=4")
    out = watched.stdout + watched.stderr
    assert watched.returncode == 0, out
    assert "six 1." in out  # the run's own log lines, streamed live
    assert "loaded total=6" in out
    assert "COMPLETED" in out.upper()

    listed = cli(root, "flow-run", "ls", "--deployment", "etl/nightly", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["state_type"] for r in runs] == ["COMPLETED"]
    run = api.read_flow_run(runs[0]["id"])
    assert (run.deployment_name, run.state_type.value) == ("etl/nightly", "COMPLETED")
    assert run.resolved_commit == commit
    assert run.exit_code == 0
    assert run.compute_seconds is not None
    assert run.compute_seconds > 0
    tasks = api.list_task_runs(run.id).items
    assert sorted(t.state_type.value for t in tasks) == ["COMPLETED", "COMPLETED"]
    # What the run published, with its run token, from the flow and from a task.
    published = {a.key: a for a in api.list_artifacts(flow_run_id=run.id)}
    assert published["etl-report"].data == "loaded **6**"
    assert published["etl-report"].task_run_id is None
    assert published["extracted"].data == {"columns": ["row"], "rows": [[0], [1], [2], [3]]}
    assert published["extracted"].task_run_id in {t.id for t in tasks}


def test_a_run_created_after_a_push_runs_the_pushed_commit(
    root: Path, remote: GitRemote, git_base: str, pool: str, api: SyncClient
) -> None:
    first = remote.commit({"flows/pushed.py": PUSHED.format(version=1)}, "pushed v1")
    deployed = python(
        root,
        f"""
        from flowyard import flow

        flow.from_source(
            source="{git_base}/flows.git", entrypoint="flows/pushed.py:pushed"
        ).deploy(name="tracking", work_pool_name="{pool}")
        """,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    seen = []
    for version in (1, 2):
        if version == 2:  # runs of the branch a moment ago were told v1: not this one
            second = remote.commit({"flows/pushed.py": PUSHED.format(version=2)}, "pushed v2")
        watched = watch(root, "pushed/tracking")
        assert watched.returncode == 0, watched.stdout + watched.stderr
        assert f"running version {version}" in watched.stdout + watched.stderr
        runs = api.list_flow_runs(limit=200).items
        seen.append(
            max(
                (r for r in runs if r.deployment_name == "pushed/tracking"), key=lambda r: r.created
            )
        )
    assert [r.resolved_commit for r in seen] == [first, second]
    cached = {p.read_text() for p in (root / "home").glob("**/*.trees/*/flows/pushed.py")}
    assert cached == {PUSHED.format(version=1), PUSHED.format(version=2)}  # as committed


def test_a_failing_run_exits_one_and_says_why(
    root: Path, remote: GitRemote, git_base: str, pool: str
) -> None:
    remote.commit(
        {
            "flows/broken.py": "from flowyard import flow\n\n@flow\ndef broken():\n    raise ValueError('no rows today')\n"
        },
        "broken flow",
    )
    deployed = python(
        root,
        f"""
        from flowyard import flow

        flow.from_source("{git_base}/flows.git", "flows/broken.py:broken").deploy(
            name="broken", work_pool_name="{pool}", print_next_steps=False
        )
        """,
    )
    assert deployed.returncode == 0, deployed.stderr
    watched = watch(root, "broken/broken")
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert "no rows today" in watched.stdout + watched.stderr


def test_requirements_txt_through_a_flowyard_yaml_pull_step(
    root: Path, remote: GitRemote, git_base: str, pool: str, api: SyncClient
) -> None:
    project = f"""
    name: etl-project
    pull:
      - flowyard.deployments.steps.git_clone:
          repository: {git_base}/flows.git
          branch: main
      - flowyard.deployments.steps.pip_install_requirements:
          requirements_file: requirements.txt
    deployments:
      - name: from-yaml
        entrypoint: flows/etl.py:etl
        parameters:
          n: 5
        work_pool:
          name: {pool}
    """
    commit = remote.commit(
        {
            "flows/etl.py": ETL,
            "requirements.txt": "six>=1.10\n",
            "flowyard.yaml": textwrap.dedent(project),
        },
        "deploy with flowyard.yaml",
    )
    deployed = cli(root, "deploy", "--all", cwd=remote.work)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    saved = api.read_deployment_by_name("etl/from-yaml")
    assert saved.parameters == {"n": 5}
    assert [next(iter(step)) for step in saved.pull_steps] == [
        "flowyard.deployments.steps.git_clone",
        "flowyard.deployments.steps.pip_install_requirements",
    ]

    watched = watch(root, "etl/from-yaml")
    out = watched.stdout + watched.stderr
    assert watched.returncode == 0, out
    assert "loaded total=10" in out
    run = api.list_flow_runs(limit=1).items[0]
    assert (run.state_type.value, run.resolved_commit) == ("COMPLETED", commit)


def test_an_s3_source_runs_to_completed(
    root: Path, s3_endpoint: str, pool: str, api: SyncClient
) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(
        key="testing", secret="testing", client_kwargs={"endpoint_url": s3_endpoint}
    )
    bucket = f"flows-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    fs.pipe(f"{bucket}/etl/flows/etl.py", ETL.encode())
    deployed = python(
        root,
        f"""
        from flowyard import RemoteStorage, flow

        storage = RemoteStorage(
            "s3://{bucket}/etl",
            key="testing",
            secret="testing",
            client_kwargs={{"endpoint_url": "{s3_endpoint}"}},
        )
        flow.from_source(storage, "flows/etl.py:etl").deploy(
            name="from-s3", work_pool_name="{pool}", job_variables={{"pip_packages": ["six"]}},
            print_next_steps=False,
        )
        """,
    )
    assert deployed.returncode == 0, deployed.stderr
    saved = api.read_deployment_by_name("etl/from-s3")
    assert saved.source["options"] == {"client_kwargs": {"endpoint_url": s3_endpoint}}
    assert "testing" not in str(saved.source)  # the credentials went to a secret
    assert saved.source["credentials_secret"] == "source-credentials-etl-from-s3"
    watched = watch(root, "etl/from-s3", "n=3")
    out = watched.stdout + watched.stderr
    assert watched.returncode == 0, out
    assert "loaded total=3" in out
    run = api.list_flow_runs(limit=1).items[0]
    assert (run.deployment_name, run.state_type.value) == ("etl/from-s3", "COMPLETED")


def test_watch_in_a_terminal_shows_live_logs_and_the_final_state(
    root: Path, remote: GitRemote, git_base: str, pool: str
) -> None:
    """`deployment run --watch` in a real terminal (tmux), read off the screen."""
    import shutil
    import time

    if shutil.which("tmux") is None:
        missing_feature("tmux is not installed (make setup-tests installs it)")
    remote.commit({"flows/etl.py": ETL}, "etl flow for the terminal")
    deployed = python(
        root,
        f"""
        from flowyard import flow

        flow.from_source("{git_base}/flows.git", "flows/etl.py:etl").deploy(
            name="terminal", work_pool_name="{pool}", job_variables={{"pip_packages": ["six"]}},
            print_next_steps=False,
        )
        """,
    )
    assert deployed.returncode == 0, deployed.stderr
    session = f"flowyard-{uuid.uuid4().hex[:8]}"
    command = (
        f"env FLOWYARD_HOME={root / 'home'} {FLOWYARD} deployment run etl/terminal "
        f"--param n=5 --watch; echo EXIT=$?; sleep 60"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command], check=True
    )
    try:
        screen = ""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session, "-S", "-200"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if "EXIT=" in screen:
                break
            time.sleep(0.3)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert "EXIT=0" in screen, screen
    assert "State: RUNNING" in screen, screen
    assert "six 1." in screen
    assert "loaded total=10" in screen
    assert "finished in state COMPLETED" in screen
