"""Backends installed on first use: every thread that asks finds them installed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from flowyard.sdk import _backends


def test_threads_that_ask_while_another_installs_wait_for_the_installation() -> None:
    installed: list[str] = []
    calls: list[int] = []

    def slow_installer() -> None:
        calls.append(1)
        time.sleep(0.1)  # importing the client takes a while
        installed.append("backends")

    _backends.install_on_first_use(slow_installer)
    start = threading.Barrier(4)

    def ask() -> list[str]:
        start.wait()
        _backends.install_deferred()
        return list(installed)

    with ThreadPoolExecutor(4) as pool:
        seen = list(pool.map(lambda _: ask(), range(4)))
    assert calls == [1]  # installed once
    assert seen == [["backends"]] * 4  # and no thread went on before it was done
