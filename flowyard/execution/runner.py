"""The process inside a managed run's sandbox: load the entrypoint, run, report, exit.

Contract with the pipeline (environment variables):
``FLOWYARD_RUN_ID`` the flow run to execute; ``FLOWYARD_API_URL`` and
``FLOWYARD_API_KEY`` the API (a unix socket) and a token scoped to this run;
``FLOWYARD_ENTRYPOINT`` ``path/to/file.py:function``; and
``FLOWYARD_WORKING_DIRECTORY`` relative to the current directory (the
checkout). The SDK's server integration records the run's states, task runs
and logs, batched, and flushes before the flow call returns.

Exit codes say what happened: 0 the flow completed; 1 the flow failed or was
cancelled (its final state is recorded); 2 the run could not start (a bad
entrypoint or parameters; FAILED is recorded with the reason); 3 the runner
could not reach the API at all.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowyard.client import SyncClient

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_NOT_STARTED = 2
EXIT_UNREACHABLE = 3

logger = logging.getLogger("flowyard.runner")


def _fail_before_start(client: SyncClient, run_id: uuid.UUID, message: str) -> int:
    from flowyard.schemas.states import StateCreate, StateType

    print(message, file=sys.stderr, flush=True)
    client.set_flow_run_state(run_id, StateCreate(type=StateType.FAILED, message=message))
    return EXIT_NOT_STARTED


def main() -> int:
    run_id = uuid.UUID(os.environ["FLOWYARD_RUN_ID"])
    entrypoint = os.environ["FLOWYARD_ENTRYPOINT"]
    workdir = (Path.cwd() / os.environ.get("FLOWYARD_WORKING_DIRECTORY", ".")).resolve()

    from flowyard.client import get_sync_client

    client = get_sync_client(required=True)
    if client is None:  # required=True raises instead; this narrows the type
        return EXIT_UNREACHABLE
    try:
        return _run(client, run_id, entrypoint, workdir)
    finally:
        client.close()


def _run(client: SyncClient, run_id: uuid.UUID, entrypoint: str, workdir: Path) -> int:
    from flowyard.client import ClientError

    try:
        run = client.read_flow_run(run_id)
        deployment = client.read_deployment(run.deployment_id) if run.deployment_id else None
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
            run.parameters,
            flow_run_id=run_id,
            flow_run_name=run.name,
            deployment_id=run.deployment_id,
            deployment_name=deployment.name if deployment else None,
        )
    except Exception as exc:  # raised before the flow body: signature/parameter mismatch
        return _fail_before_start(client, run_id, f"could not start {entrypoint}: {exc}")
    return EXIT_COMPLETED if state.is_completed() else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
