"""Which runs a standby can serve: same runtime, environment, command, storage, start-up variables."""

from __future__ import annotations

from pathlib import Path

from flowyard.execution.sandbox import Limits, NetworkMode, SandboxSpec
from flowyard.execution.sandbox._standby import key_of, standby_spec, startup_env
from tests.unit.sandbox.runner_specs import RUNNER_ENV, runner_spec


def spec(**changes: object) -> SandboxSpec:
    return runner_spec(**changes)


def test_runs_differing_only_in_what_the_standby_is_given_later_share_a_key() -> None:
    other = spec(
        run_id="r2",
        env={
            "FLOWYARD_RUN_ID": "2",
            "FLOWYARD_API_KEY": "other",
            "PYTHONUNBUFFERED": "1",
            "X": "y",
        },
        workdir_source=Path("/scratch/other"),
        limits=Limits(cpus=1, memory_bytes=1024**3),
    )
    assert key_of(spec()) is not None
    assert key_of(spec()) == key_of(other)


def test_start_up_variables_environment_storage_network_or_opting_out_change_the_key() -> None:
    key = key_of(spec())
    assert key_of(spec(env={**RUNNER_ENV, "PYTHONPATH": "/x"})) != key
    assert key_of(spec(env={**RUNNER_ENV, "LD_PRELOAD": "/x.so"})) != key
    assert key_of(spec(environment_dir=Path("/cache/envs/def"))) != key
    assert key_of(spec(limits=Limits(storage_bytes=1024**3))) != key
    assert key_of(spec(network=NetworkMode.HOST)) is None
    assert key_of(spec(standby=False)) is None


def test_a_standby_spec_carries_nothing_of_its_run() -> None:
    made = standby_spec(spec(), "/tmp/.flowyard-standby")
    assert made.env == {"PYTHONUNBUFFERED": "1", "FLOWYARD_STANDBY": "/tmp/.flowyard-standby"}
    assert made.workdir_source is None
    assert made.run_id.startswith("standby-")
    assert startup_env({"TZ": "UTC", "LC_ALL": "C", "HOME": "/x"}) == {"TZ": "UTC", "LC_ALL": "C"}
