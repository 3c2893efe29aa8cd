"""The runner's quick exit keeps what a normal exit promises: threads, atexit, flushed output."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = """
import atexit, sys, threading, time
from pathlib import Path
from flowyard.execution.runner import exit_quickly

out = Path(sys.argv[1])
def late_worker():
    time.sleep(0.2)
    (out / "thread").write_text("finished")
threading.Thread(target=late_worker).start()  # not a daemon: a normal exit waits for it
atexit.register(lambda: (out / "atexit").write_text("ran"))
sys.stdout.write("buffered, no newline")
exit_quickly(3)
"""


def test_quick_exit_waits_for_threads_runs_atexit_and_flushes_output(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 3, done.stderr
    assert done.stdout == "buffered, no newline"
    assert (tmp_path / "thread").read_text() == "finished"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_the_run_context_travels_in_the_environment_unless_too_large() -> None:
    import json
    import uuid

    from flowyard.execution.jobs import RunJob
    from flowyard.execution.pipeline import RUN_CONTEXT_MAX_BYTES, _run_context

    job = RunJob(
        run_id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        flow_name="etl",
        deployment_name="nightly",
        entrypoint="flows/etl.py:etl",
        source={},
        job_variables={},
        parameters={"n": 3, "names": ["a", "b"]},
        run_name="brave-fox",
        deployment_id=uuid.uuid4(),
    )
    context = _run_context(job)
    assert context is not None
    assert json.loads(context) == {
        "name": "brave-fox",
        "parameters": {"n": 3, "names": ["a", "b"]},
        "deployment_id": str(job.deployment_id),
        "deployment_name": "nightly",
    }
    big = RunJob(**{**job.__dict__, "parameters": {"blob": "x" * RUN_CONTEXT_MAX_BYTES}})
    assert _run_context(big) is None  # the runner reads it from the API instead
