"""Server start-up: launch to first healthy /api/health, and idle RSS after 10 s.

Targets: start <= 1.0 s, idle RSS <= 90 MiB. The floor is a bare
`python -c pass` measured in the same run. The server's own CPU time up to
that first answer is reported too: on a shared machine it moves much less
than the wall-clock time does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._report import median, python_floor

FLOWYARD = str(Path(sys.executable).with_name("flowyard"))
WARM_STARTS = 9
NOTES = (
    "When /api/health first answers, the database is checked and migrated and the "
    "scheduler runs; each API router loads on the first request under its paths (adding "
    "10 to 35 ms to that request, once), the managed dispatcher loads its execution plane "
    "half a second after start (at once if a run is created before then), and the web "
    "UI's pages load on the first page request (about 0.2 s once, and 14 MiB). The idle "
    "RSS is that of a server no one has called yet. Flowyard's bytecode is compiled "
    "before the first start, as in an installed package."
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int) -> int:
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1]) * 1024
    return total


def _start_once(home: Path, idle_seconds: float = 0) -> tuple[float, float, int]:
    port = _free_port()
    env = {**os.environ, "FLOWYARD_HOME": str(home)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [FLOWYARD, "server", "start", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client() as client:
            while True:
                try:
                    if client.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.005)
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds(proc.pid)
        rss = 0
        if idle_seconds:
            time.sleep(idle_seconds)
            rss = _rss_bytes(proc.pid)
        return elapsed, cpu, rss
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def _compile_bytecode() -> None:
    """Bring Flowyard's bytecode cache up to date, as an installed package has it.

    A checkout being edited, run with PYTHONDONTWRITEBYTECODE (as here), would
    otherwise recompile every changed module on every start and time that.
    """
    import compileall

    import flowyard

    compileall.compile_dir(Path(flowyard.__file__).parent, quiet=1)


def main() -> dict[str, Any]:
    _compile_bytecode()
    floor = python_floor()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        first, _, _ = _start_once(home)  # creates and migrates the database
        warm = [_start_once(home) for _ in range(WARM_STARTS)]
        _, _, rss = _start_once(home, idle_seconds=10)
    start = median([w[0] for w in warm])
    return {
        "title": "Server start-up (bench/server_start.py)",
        "notes": NOTES,
        "rows": [
            {"metric": "python -c pass (floor)", "value": floor, "unit": "s"},
            {"metric": "first start (creates + migrates SQLite)", "value": first, "unit": "s"},
            {"metric": "start to healthy", "value": start, "unit": "s", "target": "<= 1.0 s"},
            {"metric": "start / floor", "value": start / floor, "unit": "x"},
            {
                "metric": "server CPU time to healthy",
                "value": median([w[1] for w in warm]),
                "unit": "s",
            },
            {
                "metric": "idle RSS after 10 s",
                "value": rss / 1024**2,
                "unit": "MiB",
                "target": "<= 90 MiB",
            },
        ],
    }


if __name__ == "__main__":
    from bench._report import write_result

    result = main()
    write_result("server_start", result)
    for row in result["rows"]:
        print(row)
