"""Sandbox overhead: a trivial run in the strict sandbox versus the same bare subprocess.

Both run ``python -c pass`` with the server's runtime, paired (bare, sandboxed,
bare, ...) in one process so machine noise hits both alike. A sandboxed run
is timed from ``start()`` to the end of ``wait()``: cgroup, loop-mounted
128 GiB storage limit, namespaces, the run and the whole teardown.
Target: <= 30 ms added per run (median of the paired differences).

Then the same with network ``egress`` (the egress proxy listening, the
in-sandbox bridge started before the command), paired with network
``none``: what asking for egress adds to a run's start and end.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flowyard.execution.egress import AllowList, EgressProxy
from flowyard.execution.sandbox import (
    IsolationUnavailable,
    Limits,
    LocalSandbox,
    NetworkMode,
    Placeholder,
    SandboxSpec,
)

RUNS = 40
EGRESS_RUNS = 20
WARMUP = 3


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


async def _measure(sandbox: LocalSandbox, runtime: Path) -> dict[str, list[float]]:
    limits = Limits()  # the default policy: 4 vCPU, 16 GiB, 128 GiB storage, 24 h
    python = str(runtime / "bin" / "python3")
    sandbox.warm(limits.storage_bytes)
    await asyncio.sleep(0.5)  # let the pool format its first images
    times: dict[str, list[float]] = {"bare": [], "sandbox": [], "start": [], "wait": []}
    for index in range(WARMUP + RUNS):
        begin = time.perf_counter()
        subprocess.run([python, "-c", "pass"], env={}, check=True)
        bare = time.perf_counter() - begin
        spec = SandboxSpec(
            run_id=f"bench-{index}",
            argv=[Placeholder.PYTHON, "-c", "pass"],
            runtime_dir=runtime,
            limits=limits,
        )
        begin = time.perf_counter()
        handle = await sandbox.start(spec)
        started = time.perf_counter()
        result = await handle.wait()
        ended = time.perf_counter()
        if not result.succeeded:
            raise RuntimeError(f"sandboxed run failed: {result.crash_reason}\n{result.output_tail}")
        if index >= WARMUP:
            times["bare"].append(bare)
            times["sandbox"].append(ended - begin)
            times["start"].append(started - begin)
            times["wait"].append(ended - started)
    times.update(await _measure_egress(sandbox, runtime, limits))
    return times


async def _timed_run(sandbox: LocalSandbox, spec: SandboxSpec) -> float:
    begin = time.perf_counter()
    handle = await sandbox.start(spec)
    result = await handle.wait()
    if not result.succeeded:
        raise RuntimeError(f"sandboxed run failed: {result.crash_reason}\n{result.output_tail}")
    return time.perf_counter() - begin


async def _measure_egress(
    sandbox: LocalSandbox, runtime: Path, limits: Limits
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"none": [], "egress": []}
    with tempfile.TemporaryDirectory(prefix="fy-bench-") as folder:
        proxy = EgressProxy(Path(folder) / "egress.sock", AllowList.parse([]))
        await proxy.start()
        try:
            for index in range(WARMUP + EGRESS_RUNS):
                pair = {}
                for mode in (NetworkMode.NONE, NetworkMode.EGRESS):
                    spec = SandboxSpec(
                        run_id=f"bench-{mode.value}-{index}",
                        argv=[Placeholder.PYTHON, "-c", "pass"],
                        runtime_dir=runtime,
                        network=mode,
                        egress_proxy_socket=proxy.socket_path
                        if mode is NetworkMode.EGRESS
                        else None,
                        limits=limits,
                    )
                    pair[mode.value] = await _timed_run(sandbox, spec)
                if index >= WARMUP:
                    for mode_name, seconds in pair.items():
                        times[mode_name].append(seconds)
        finally:
            await proxy.close()
    return times


def main() -> dict[str, Any]:
    """Measure and return the benchmark's rows (milliseconds)."""
    runtime = Path(sys.base_prefix)
    with tempfile.TemporaryDirectory(prefix="flowyard-bench-sandbox-") as state:
        try:
            sandbox = LocalSandbox(Path(state))
        except IsolationUnavailable as exc:
            return {
                "title": "Sandbox overhead (bench/sandbox_overhead.py)",
                "rows": [],
                "notes": str(exc),
            }
        try:
            times = asyncio.run(_measure(sandbox, runtime))
        finally:
            sandbox.close()
    added = [s - b for s, b in zip(times["sandbox"], times["bare"], strict=True)]
    egress_added = [e - n for e, n in zip(times["egress"], times["none"], strict=True)]
    ms = 1000.0

    def row(metric: str, value: float, target: str = "") -> dict[str, Any]:
        entry: dict[str, Any] = {"metric": metric, "value": round(value * ms, 2), "unit": "ms"}
        if target:
            entry["target"] = target
        return entry

    return {
        "title": "Sandbox overhead (bench/sandbox_overhead.py)",
        "notes": (
            f"{RUNS} paired runs of `python -c pass` ({runtime}); sandboxed = start() to the end "
            "of wait(), with the default limits (128 GiB loop-mounted storage, 16 GiB, 4 vCPU). "
            f"Then {EGRESS_RUNS} pairs of sandboxed runs with network none and egress (the "
            "egress proxy listening, the in-sandbox bridge started before the command)."
        ),
        "rows": [
            row("bare python -c pass (floor)", statistics.median(times["bare"])),
            row("sandboxed python -c pass", statistics.median(times["sandbox"])),
            row("added per run (median of pairs)", statistics.median(added), "<= 30 ms"),
            row("added per run (p90 of pairs)", _percentile(added, 0.9)),
            row("start() (setup until the process is spawned)", statistics.median(times["start"])),
            row("wait() (run, then teardown)", statistics.median(times["wait"])),
            row("sandboxed with network egress", statistics.median(times["egress"])),
            row("added by egress over none (median of pairs)", statistics.median(egress_added)),
        ],
        "raw_ms": {k: [round(v * ms, 3) for v in vs] for k, vs in times.items()},
    }


if __name__ == "__main__":
    from bench._report import write_result

    outcome = main()
    write_result("sandbox_overhead", outcome)
    for entry in outcome["rows"]:
        print(f"{entry['metric']}: {entry['value']} {entry['unit']}")
