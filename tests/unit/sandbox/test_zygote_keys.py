"""Which runs a zygote serves: ``{python} -m <module>`` specs that opt in, with safe start-up variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowyard.execution.sandbox import SandboxSpec
from flowyard.execution.sandbox._zygotes import key_of
from tests.unit.sandbox.runner_specs import runner_spec


def spec(**changes: object) -> SandboxSpec:
    return runner_spec(**{"sdk_dir": Path("/cache/sdk/1"), **changes})


def test_runs_differing_in_their_own_variables_and_checkout_share_a_zygote() -> None:
    other = spec(
        run_id="r2",
        env={"FLOWYARD_RUN_ID": "2", "FLOWYARD_API_KEY": "x", "PYTHONUNBUFFERED": "1", "A": "b"},
        workdir_source=Path("/scratch/other"),
    )
    assert key_of(spec()) is not None
    assert key_of(spec()) == key_of(other)
    assert "secret" not in repr(key_of(spec()))


@pytest.mark.parametrize(
    "changes",
    [
        {"environment_dir": Path("/cache/envs/other")},
        {"runtime_dir": Path("/opt/python-3.12")},
        {"argv": ["{python}", "-m", "other.module"]},
        {"env": {"PYTHONUNBUFFERED": "0"}},
        {"env": {"PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}},
        {"env": {"PYTHONUNBUFFERED": "1", "TZ": "Europe/Paris"}},
    ],
)
def test_a_different_environment_module_or_start_up_variable_is_another_zygote(
    changes: dict[str, object],
) -> None:
    assert key_of(spec(**changes)) not in (None, key_of(spec()))


@pytest.mark.parametrize(
    "changes",
    [
        {"standby": False},
        {"sdk_dir": None},
        {"argv": ["{python}", "-c", "print(1)"]},
        {"argv": ["/usr/bin/python3", "-m", "flowyard.execution.runner"]},
        # What would make the zygote (root) load code of the run's choosing: start cold.
        {"env": {"PYTHONPATH": "/work"}},
        {"env": {"LD_PRELOAD": "/work/evil.so"}},
        {"env": {"LD_LIBRARY_PATH": "/work"}},
        {"env": {"PYTHONHOME": "/work"}},
        {"env": {"PYTHONWARNINGS": "error::mod.Warning"}},
        {"env": {"PYTHONPYCACHEPREFIX": "/tmp/pyc"}},
        {"env": {"LC_ALL": "/work/locale"}},
        {"env": {"LANG": "../../work/locale"}},
        {"env": {"TZ": "/work/zone"}},
    ],
)
def test_specs_a_zygote_must_not_serve(changes: dict[str, object]) -> None:
    assert key_of(spec(**changes)) is None
