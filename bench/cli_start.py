"""CLI start-up: `flowyard --help` and `flowyard version` against a bare `python -c pass`.

Each command is a whole process (the console script), paired with the floor in
the same loop so machine noise hits both. Target (issue 8): `flowyard --help`
answers in <= 300 ms.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RUNS = 15
FLOWYARD = str(Path(sys.executable).with_name("flowyard"))


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> dict[str, Any]:
    floor, helps, versions, pools = [], [], [], []
    for _ in range(RUNS):
        floor.append(_timed([sys.executable, "-c", "pass"]))
        helps.append(_timed([FLOWYARD, "--help"]))
        versions.append(_timed([FLOWYARD, "version"]))
        pools.append(_timed([FLOWYARD, "work-pool", "--help"]))
    ms = 1000
    med = statistics.median
    return {
        "title": "CLI start-up (bench/cli_start.py)",
        "notes": f"{RUNS} paired runs of each command as a whole process; medians.",
        "rows": [
            {"metric": "floor: python -c pass", "value": med(floor) * ms, "unit": "ms"},
            {
                "metric": "flowyard --help",
                "value": med(helps) * ms,
                "unit": "ms",
                "target": "<= 300 ms",
            },
            {
                "metric": "flowyard --help, above the floor",
                "value": (med(helps) - med(floor)) * ms,
                "unit": "ms",
            },
            {"metric": "flowyard version", "value": med(versions) * ms, "unit": "ms"},
            {"metric": "flowyard work-pool --help", "value": med(pools) * ms, "unit": "ms"},
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
