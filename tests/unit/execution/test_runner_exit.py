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
