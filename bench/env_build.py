"""Environment and source stages: what a run pays before its flow starts.

Measures, next to a bare ``python -c pass`` floor:

- a cached environment lookup (the common case: a run whose packages were
  installed before), with a long-lived builder and with a fresh one;
- an uncached environment holding ``pandas``: with an empty uv cache (downloads)
  and with a warm one (a new combination of already-downloaded packages);
- a second checkout of a commit already in the git mirror, and of a branch
  (one ``ls-remote`` plus the checkout).

Run ``python bench/env_build.py``; results go to ``bench/results/env_build.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flowyard.execution import environments, sources

RESULTS = Path(__file__).resolve().parent / "results"
POPULAR = "pandas"
REPEATS = 20


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _floor(runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return _median(times)


async def _environment_numbers(root: Path) -> dict[str, Any]:
    runtime = environments.RuntimeRegistry.from_settings({}).resolve(None)
    builder = environments.EnvironmentBuilder(root / "cache")
    numbers: dict[str, Any] = {}

    await builder.build(runtime, ["six"])
    lookups = []
    for _ in range(REPEATS):
        lookups.append((await builder.build(runtime, ["six"])).duration_seconds)
    numbers["cached_lookup_s"] = _median(lookups)

    fresh = []
    for _ in range(5):
        start = time.perf_counter()
        await environments.EnvironmentBuilder(root / "cache").build(runtime, ["six"])
        fresh.append(time.perf_counter() - start)
    numbers["cached_lookup_new_builder_s"] = _median(fresh)

    try:
        cold = await builder.build(runtime, [POPULAR])
        numbers["uncached_cold_uv_cache_s"] = cold.duration_seconds
        numbers["uncached_packages"] = cold.installed_count
        warm = await builder.build(runtime, [POPULAR, "six"])
        numbers["uncached_warm_uv_cache_s"] = warm.duration_seconds
    except environments.EnvironmentBuildError as exc:
        numbers["uncached_error"] = str(exc)
    return numbers


def _git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@flowyard.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@flowyard.invalid",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


async def _git_numbers(root: Path) -> dict[str, Any]:
    repo = root / "repo"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    for i in range(100):
        path = repo / "flows" / f"module_{i}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"def step_{i}():\n    return {i}\n" * 20)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "bench", cwd=repo)
    commit = _git("rev-parse", "HEAD", cwd=repo)
    cache = root / "git-cache"

    def source(ref: str) -> sources.GitSource:
        return sources.GitSource(str(repo), cache_dir=cache, ref=ref, allow_local=True)

    first = await source("main").fetch(root / "checkout-first")
    pinned, branch = [], []
    for i in range(REPEATS):
        pinned.append((await source(commit).fetch(root / f"pinned-{i}")).duration_seconds)
        branch.append((await source("main").fetch(root / f"branch-{i}")).duration_seconds)
    return {
        "first_clone_s": first.duration_seconds,
        "cached_commit_checkout_s": _median(pinned),
        "cached_branch_checkout_s": _median(branch),
    }


def main() -> dict[str, Any]:
    """Run the measurements and return them in the ``bench`` result format."""
    floor = _floor()
    with tempfile.TemporaryDirectory(prefix="flowyard-bench-") as tmp:
        env = asyncio.run(_environment_numbers(Path(tmp)))
        git = asyncio.run(_git_numbers(Path(tmp)))
    rows: list[dict[str, Any]] = [
        {"metric": "python -c pass (floor)", "value": floor, "unit": "s"},
        {"metric": "cached environment lookup", "value": env["cached_lookup_s"], "unit": "s"},
        {
            "metric": "cached environment lookup, new builder",
            "value": env["cached_lookup_new_builder_s"],
            "unit": "s",
        },
    ]
    if "uncached_error" in env:
        rows.append({"metric": f"uncached {POPULAR} environment", "value": env["uncached_error"]})
    else:
        rows += [
            {
                "metric": f"uncached {POPULAR} environment, empty uv cache",
                "value": env["uncached_cold_uv_cache_s"],
                "unit": "s",
                "target": "<= 3 s",
            },
            {
                "metric": f"uncached {POPULAR} environment, warm uv cache",
                "value": env["uncached_warm_uv_cache_s"],
                "unit": "s",
                "target": "<= 3 s",
            },
            {"metric": "packages in it", "value": env["uncached_packages"]},
        ]
    rows += [
        {"metric": "first clone (100 files, local)", "value": git["first_clone_s"], "unit": "s"},
        {
            "metric": "second checkout of a cached commit",
            "value": git["cached_commit_checkout_s"],
            "unit": "s",
        },
        {
            "metric": "second checkout of a branch (ls-remote + checkout)",
            "value": git["cached_branch_checkout_s"],
            "unit": "s",
        },
    ]
    return {
        "title": "Sources and environments (bench/env_build.py)",
        "notes": f"Medians of {REPEATS} runs where repeated; uncached builds run once each.",
        "rows": rows,
        "raw": {"environments": env, "git": git},
    }


def _write(result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        **result,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = RESULTS / "env_build.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return path


if __name__ == "__main__":
    outcome = main()
    for row in outcome["rows"]:
        print(f"{row['metric']}: {row['value']} {row.get('unit', '')}")
    print(f"written to {_write(outcome)}")
