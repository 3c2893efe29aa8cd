from __future__ import annotations

import json
import subprocess
import sys

HEAVY = [
    "fastapi",
    "sqlalchemy",
    "pydantic",
    "flowyard.server",
    "flowyard.client",
    "asyncio",
    "httpx",
]


def test_importing_flowyard_loads_no_server_database_web_or_validation_library() -> None:
    code = (
        "import json, sys; import flowyard; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout) == []


def test_running_a_flow_with_untyped_parameters_does_not_load_pydantic() -> None:
    code = (
        "import sys\n"
        "from flowyard import flow, task\n"
        "@task\n"
        "def inc(x): return x + 1\n"
        "@flow\n"
        "def f(x=1): return inc(x)\n"
        "assert f() == 2\n"
        "print('pydantic' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"
