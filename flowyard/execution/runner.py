"""The process inside a managed run's sandbox: load the entrypoint, run, report, exit.

Contract with the pipeline (environment variables):
``FLOWYARD_RUN_ID`` the flow run to execute; ``FLOWYARD_API_URL`` and
``FLOWYARD_API_KEY`` the API (a unix socket) and a token scoped to this run;
``FLOWYARD_ENTRYPOINT`` ``path/to/file.py:function``;
``FLOWYARD_WORKING_DIRECTORY`` relative to the current directory (the
checkout); and, unless too large, ``FLOWYARD_RUN_CONTEXT``, JSON of the run's
name, parameters and deployment (without it the runner reads them from the
API first). The SDK's server integration records the run's states, task runs
and logs, batched, and flushes before the flow call returns.

Started as a warm standby (``FLOWYARD_STANDBY`` names a FIFO in its /tmp),
it loads what every run needs first, then waits on the FIFO for its run's
environment, a JSON ``{"env": {...}}`` the sandbox writes when a run takes
it, and goes on as above; end-of-file with nothing means no run came.

Exit codes say what happened: 0 the flow completed; 1 the flow failed or was
cancelled (its final state is recorded); 2 the run could not start (a bad
entrypoint or parameters; FAILED is recorded with the reason); 3 the runner
could not reach the API at all.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from flowyard.client._wire import WireClient

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_NOT_STARTED = 2
EXIT_UNREACHABLE = 3

logger = logging.getLogger("flowyard.runner")


def _fail_before_start(client: WireClient, run_id: uuid.UUID, message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    client.post(f"/flow-runs/{run_id}/state", {"type": "FAILED", "message": message[:20_000]})
    return EXIT_NOT_STARTED


def main() -> int:
    fifo = os.environ.pop("FLOWYARD_STANDBY", None)
    if fifo is not None and not _stand_by(Path(fifo)):
        return EXIT_COMPLETED
    run_id = uuid.UUID(os.environ["FLOWYARD_RUN_ID"])
    entrypoint = os.environ["FLOWYARD_ENTRYPOINT"]
    workdir = (Path.cwd() / os.environ.get("FLOWYARD_WORKING_DIRECTORY", ".")).resolve()

    # The standard library's HTTP client, not httpx and the pydantic schemas:
    # this is every managed run's start-up path.
    from flowyard.client._wire import WireClient

    client = WireClient.from_config()
    try:
        return _run(client, run_id, entrypoint, workdir)
    finally:
        client.close()


def _stand_by(fifo: Path) -> bool:
    """Load what every run needs, then wait for this sandbox's run; ``False`` if none comes.

    Only what every run loads: pydantic, say, is loaded by a run whose parameters
    need it (a flow of plain types never does). Loading more here would make the
    first log line of such a run no sooner, and every standby cost more CPU.
    """
    import flowyard.client._errors
    import flowyard.client._wire
    import flowyard.client.sdk_integration
    import flowyard.sdk
    import flowyard.sdk._entrypoints  # noqa: F401  (loaded ahead of the run, not used here)

    os.mkfifo(fifo, 0o600)
    with fifo.open("rb") as fh:  # blocks until the sandbox hands over a run
        data = fh.read()
    fifo.unlink(missing_ok=True)
    if not data:
        return False
    os.environ.update(json.loads(data)["env"])
    return True


def _run(client: WireClient, run_id: uuid.UUID, entrypoint: str, workdir: Path) -> int:
    from flowyard.client._errors import ClientError

    context = os.environ.pop("FLOWYARD_RUN_CONTEXT", None)
    if context is not None:  # what the pipeline already knew: no request before the flow
        run: dict[str, Any] = json.loads(context)
        deployment_id, deployment_name = run.get("deployment_id"), run.get("deployment_name")
    else:
        try:
            run = client.get(f"/flow-runs/{run_id}")
            deployment_id = run.get("deployment_id")
            # The API names it FLOW/DEPLOYMENT; runtime.deployment.name is the deployment's own.
            deployment_name = (run.get("deployment_name") or "").rpartition("/")[2] or None
            if deployment_id and not deployment_name:
                deployment_name = client.get(f"/deployments/{deployment_id}")["name"]
        except ClientError as exc:
            print(f"runner: cannot reach the API: {exc}", file=sys.stderr, flush=True)
            return EXIT_UNREACHABLE

    from flowyard.sdk import run_flow
    from flowyard.sdk._entrypoints import load_flow_from_entrypoint

    os.chdir(workdir)
    sys.path.insert(0, str(workdir))
    try:
        flow = load_flow_from_entrypoint(workdir, entrypoint)
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return _fail_before_start(client, run_id, f"could not load {entrypoint}: {detail}")
    try:
        state = run_flow(
            flow,
            run.get("parameters") or {},
            flow_run_id=run_id,
            flow_run_name=run.get("name"),
            deployment_id=uuid.UUID(deployment_id) if deployment_id else None,
            deployment_name=deployment_name,
        )
    except Exception as exc:  # raised before the flow body: signature/parameter mismatch
        return _fail_before_start(client, run_id, f"could not start {entrypoint}: {exc}")
    return EXIT_COMPLETED if state.is_completed() else EXIT_FAILED


def exit_quickly(code: int) -> NoReturn:
    """End the process as a normal exit would, less the interpreter's teardown.

    Non-daemon threads are waited for and ``atexit`` handlers run (the user's
    too), then the standard streams are flushed; freeing every module and
    object one by one, which costs a run ~20 ms of CPU and changes nothing
    for a sandbox about to be thrown away, is skipped.
    """
    flush_and_wait()
    os._exit(code)


def flush_and_wait() -> None:
    """What ending an interpreter does that a run can see: threads, ``atexit``, streams."""
    import atexit
    import contextlib
    import threading

    wait_for_threads = getattr(threading, "_shutdown", None)  # what Py_Finalize calls first
    if wait_for_threads is not None:
        wait_for_threads()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed by the flow
            stream.flush()


if __name__ == "__main__":
    exit_quickly(main())
