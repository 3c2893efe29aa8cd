"""SDK overhead: import time, an empty flow, 1,000 sequential and 1,000 submitted tasks.

Runnable as ``python bench/sdk_overhead.py`` (writes ``bench/results/sdk_overhead.json``)
and through ``make bench`` (``main()`` returns the rows).

- Import: ``python -c "import flowyard"`` against a bare ``python -c pass``, paired
  in the same loop so machine noise hits both; the figure is the median of the
  paired differences. The in-process import time is reported too.
- Flows run in this process, warmed up once, with the default logging: the
  console handler is on and writes one line per task run, here to /dev/null.
  A second figure with INFO logging off shows what the console lines cost.
- Per-task figures are a whole flow's wall time divided by its 1,000 tasks
  (flow overhead included), median over repeats.
- One row routes every event to an in-memory ``RecordingReporter``: the cost of
  building and handing over events, without any network.
- The last rows record to a real local server (``flowyard server start``, SQLite):
  the flow call returns once its states, task runs and logs are stored, so the
  per-task figure includes sending and storing them (in batches). The server
  shares the machine's CPUs with the flow, and on a shared machine wall times
  swing with the neighbours' load: the CPU time of this process and of the
  server process per task (Linux, from /proc) are reported beside them.

Targets (issue 5): import <= 150 ms, empty flow call <= 1 ms, <= 50 us per
sequential task with no server, <= 200 us per task recorded by a local server.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
IMPORT_RUNS = 15
FLOW_REPEATS = 7
EMPTY_CALLS = 300
TASKS = 1000


def _timed_subprocess(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": ""})
    return time.perf_counter() - start


def measure_import() -> dict[str, float]:
    floors: list[float] = []
    imports: list[float] = []
    for _ in range(IMPORT_RUNS):
        floors.append(_timed_subprocess("pass"))
        imports.append(_timed_subprocess("import flowyard"))
    in_process = []
    probe = "import time; t = time.perf_counter(); import flowyard; print(time.perf_counter() - t)"
    for _ in range(IMPORT_RUNS):
        out = subprocess.run(
            [sys.executable, "-c", probe], check=True, capture_output=True, text=True
        ).stdout
        in_process.append(float(out))
    return {
        "floor": statistics.median(floors),
        "import": statistics.median(imports),
        "added": statistics.median(i - f for i, f in zip(imports, floors, strict=True)),
        "in_process": statistics.median(in_process),
    }


@contextlib.contextmanager
def _quiet_console() -> Iterator[None]:
    """Send the console log lines to /dev/null (the handler follows sys.stderr)."""
    with open(os.devnull, "w") as sink:
        saved, sys.stderr = sys.stderr, sink
        try:
            yield
        finally:
            sys.stderr = saved


@contextlib.contextmanager
def _info_logging(enabled: bool) -> Iterator[None]:
    logger = logging.getLogger("flowyard")
    before = logger.level
    if not enabled:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(before)


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    return _median_costs(fn, repeats, None)[0]


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process so far; 0.0 where /proc is not."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median_costs(
    fn: Callable[[], object], repeats: int, server_pid: int | None
) -> tuple[float, float, float]:
    """Median wall seconds, CPU seconds of this process and of the server, per call."""
    walls, cpus, server = [], [], []
    for _ in range(repeats):
        served = _process_cpu(server_pid) if server_pid else 0.0
        cpu = time.process_time()
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        server.append(_process_cpu(server_pid) - served if server_pid else 0.0)
    return statistics.median(walls), statistics.median(cpus), statistics.median(server)


@contextlib.contextmanager
def _local_server() -> Iterator[int]:
    """A real ``flowyard server start`` (SQLite, no dispatcher) that this process records to."""
    import tempfile

    from flowyard.client import sdk_integration
    from flowyard.sdk import _backends
    from tests.acceptance.server_process import running_server

    with tempfile.TemporaryDirectory(prefix="flowyard-sdk-bench-") as tmp:
        home = Path(tmp) / "home"
        with running_server(home, "--no-dispatcher") as server:
            saved = {k: os.environ.get(k) for k in ("FLOWYARD_HOME", "FLOWYARD_API_URL")}
            os.environ["FLOWYARD_HOME"] = str(home)
            os.environ.pop("FLOWYARD_API_URL", None)
            _backends.reset_server_integration()
            try:
                yield server.process.pid
            finally:
                sdk_integration.uninstall()
                _backends.reset_server_integration()
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value


def measure_flows(
    info_logging: bool = True, recording: bool = False, server: bool = False
) -> dict[str, float]:
    from flowyard import flow, task
    from flowyard.sdk import RecordingReporter, use_reporter

    @task
    def increment(x: int) -> int:
        return x + 1

    @flow
    def empty() -> None:
        return None

    @flow
    def sequential(n: int) -> int:
        value = 0
        for _ in range(n):
            value = increment(value)
        return value

    @flow
    def submitted(n: int) -> int:
        futures = [increment.submit(i) for i in range(n)]
        return sum(f.result() for f in futures)

    reporting: contextlib.AbstractContextManager[object]
    if server:
        reporting = _local_server()
    elif recording:
        reporting = use_reporter(RecordingReporter())
    else:
        reporting = contextlib.nullcontext()
    with _quiet_console(), _info_logging(info_logging), reporting as server_pid:
        empty()
        sequential(10)
        submitted(10)
        pid = server_pid if isinstance(server_pid, int) else None
        figures = {"empty_flow": _median_seconds(empty, EMPTY_CALLS)}
        for name, run in (("sequential", sequential), ("submitted", submitted)):
            wall, cpu, served = _median_costs(functools.partial(run, TASKS), FLOW_REPEATS, pid)
            figures[f"{name}_per_task"] = wall / TASKS
            figures[f"{name}_cpu_per_task"] = cpu / TASKS
            figures[f"{name}_server_cpu_per_task"] = served / TASKS
        return figures


def _row(metric: str, value: float, unit: str, target: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"metric": metric, "value": round(value, 3), "unit": unit}
    if target:
        entry["target"] = target
    return entry


def main() -> dict[str, Any]:
    """Measure and return the benchmark's rows."""
    imported = measure_import()
    logged = measure_flows(info_logging=True)
    silent = measure_flows(info_logging=False)
    recorded = measure_flows(recording=True)
    served = measure_flows(server=True)
    ms, us = 1e3, 1e6
    try:
        import prefect  # noqa: F401

        prefect_note = "Prefect is installed but no comparison is run by this script."
    except ImportError:
        prefect_note = "Prefect is not installed in the bench environment; no ratio reported."
    return {
        "title": "SDK overhead (bench/sdk_overhead.py)",
        "notes": (
            f"Import: {IMPORT_RUNS} paired subprocess runs against `python -c pass`. Flows: "
            f"in-process, warmed up, median of {FLOW_REPEATS} runs of {TASKS} trivial tasks "
            f"(and of {EMPTY_CALLS} empty flow calls); console logging on, to /dev/null. "
            "CPU per recorded task: this process's, and the local server's from /proc "
            f"(10 ms ticks: about 10 us/task on {TASKS} tasks). " + prefect_note
        ),
        "rows": [
            _row("bare python -c pass (floor)", imported["floor"] * ms, "ms"),
            _row("import flowyard, added to the floor", imported["added"] * ms, "ms", "<= 150 ms"),
            _row("import flowyard, in-process", imported["in_process"] * ms, "ms"),
            _row("empty flow call", logged["empty_flow"] * ms, "ms", "<= 1 ms"),
            _row(
                "sequential trivial task", logged["sequential_per_task"] * us, "us/task", "<= 50 us"
            ),
            _row("submitted trivial task", logged["submitted_per_task"] * us, "us/task"),
            _row("empty flow call, INFO logging off", silent["empty_flow"] * ms, "ms"),
            _row(
                "sequential task, INFO logging off", silent["sequential_per_task"] * us, "us/task"
            ),
            _row("submitted task, INFO logging off", silent["submitted_per_task"] * us, "us/task"),
            _row(
                "sequential task, events to an in-memory RecordingReporter",
                recorded["sequential_per_task"] * us,
                "us/task",
            ),
            _row(
                "sequential task, recorded by a local server",
                served["sequential_per_task"] * us,
                "us/task",
                "<= 200 us",
            ),
            _row(
                "submitted task, recorded by a local server",
                served["submitted_per_task"] * us,
                "us/task",
                "<= 200 us",
            ),
            _row(
                "sequential task recorded: CPU of the flow's process",
                served["sequential_cpu_per_task"] * us,
                "us/task",
            ),
            _row(
                "sequential task recorded: CPU of the server",
                served["sequential_server_cpu_per_task"] * us,
                "us/task",
            ),
            _row(
                "submitted task recorded: CPU of the flow's process",
                served["submitted_cpu_per_task"] * us,
                "us/task",
            ),
            _row(
                "submitted task recorded: CPU of the server",
                served["submitted_server_cpu_per_task"] * us,
                "us/task",
            ),
            _row("empty flow call, recorded by a local server", served["empty_flow"] * ms, "ms"),
        ],
    }


def write(result: dict[str, Any]) -> Path:
    """Write the result JSON with the machine it was measured on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamped = {
        **result,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = RESULTS / "sdk_overhead.json"
    path.write_text(json.dumps(stamped, indent=2, sort_keys=True) + "\n")
    return path


if __name__ == "__main__":
    outcome = main()
    written = write(outcome)
    report = io.StringIO()
    for entry in outcome["rows"]:
        print(f"{entry['metric']}: {entry['value']} {entry['unit']}", file=report)
    print(report.getvalue(), end="")
    print(f"written to {written}")
