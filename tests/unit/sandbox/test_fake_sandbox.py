"""The fake sandbox callers use in their unit tests."""

from __future__ import annotations

from pathlib import Path

from flowyard.execution.sandbox import Ending, FakeSandbox, SandboxResult, SandboxSpec

SPEC = SandboxSpec(run_id="r1", argv=["{python}", "-c", "pass"], runtime_dir=Path("/usr"))


def result(**changes: object) -> SandboxResult:
    fields: dict[str, object] = {
        "run_id": "x", "ending": Ending.OUT_OF_MEMORY, "exit_code": None, "signal": 9,
        "peak_memory_bytes": 10, "cpu_seconds": 1.0, "peak_storage_bytes": 0, "wall_seconds": 1.0,
        "crash_reason": "out of memory: limit 16 GiB reached (peak 16 GiB)", "output_tail": "bye",
    }  # fmt: skip
    fields.update(changes)
    return SandboxResult(**fields)  # type: ignore[arg-type]


async def test_a_scripted_run_ends_as_scripted_under_its_own_run_id(tmp_path: Path) -> None:
    fake = FakeSandbox(tmp_path)
    fake.script("r1", result())
    handle = await fake.start(SPEC)
    ended = await handle.wait()
    assert (ended.run_id, ended.ending, ended.crash_reason) == (
        "r1",
        Ending.OUT_OF_MEMORY,
        result().crash_reason,
    )
    assert fake.started == [SPEC]
    assert handle.read_output() == b"bye"


async def test_a_scripted_run_stopped_early_ends_stopped(tmp_path: Path) -> None:
    fake = FakeSandbox(tmp_path)
    fake.script("r1", result(ending=Ending.EXITED, exit_code=0, crash_reason=None), duration=30)
    handle = await fake.start(SPEC)
    handle.terminate(grace_seconds=1)
    ended = await handle.wait()
    assert ended.ending is Ending.STOPPED
    assert ended.crash_reason == "stopped on request"
    assert not ended.succeeded
