"""The cyclic collector during and after server start-up."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from flowyard.cli.server import _collection_paused
from flowyard.server._uvicorn import settle_memory


@pytest.fixture
def restore_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("restore_collector")
def test_settling_once_serving_turns_collection_back_on_with_start_up_objects_frozen() -> None:
    gc.disable()
    built_at_start = [[i] for i in range(1000)]
    settle_memory()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(built_at_start)


@pytest.mark.usefixtures("restore_collector")
def test_collection_is_paused_while_the_server_loads_and_on_again_however_it_ends() -> None:
    with _collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), _collection_paused():
        raise RuntimeError("start-up failed")
    assert gc.isenabled()
