from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowyard.errors import ConfigurationError
from flowyard.execution.environments import (
    EnvironmentBuilder,
    EnvironmentBuildError,
    IndexSettings,
    Runtime,
    RuntimeRegistry,
    probe_runtime,
    read_requirements_file,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def runtime() -> Runtime:
    return RuntimeRegistry.from_settings({}).resolve(None)


@pytest.fixture
def builder(tmp_path: Path, uv_cache: Path) -> EnvironmentBuilder:
    return EnvironmentBuilder(tmp_path / "cache", uv_cache_dir=uv_cache)


def run_in(python: Path, code: str, cwd: Path) -> str:
    done = subprocess.run(
        [str(python), "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def entries(envs: Path) -> list[str]:
    return sorted(p.name for p in envs.iterdir() if p.name != ".locks") if envs.exists() else []


async def test_an_environment_with_index_packages_and_the_sdk_is_built_then_reused(
    tmp_path: Path, builder: EnvironmentBuilder, runtime: Runtime
) -> None:
    requirements_file = tmp_path / "requirements.txt"
    requirements_file.write_text("idna>=3  # from the repository\n")
    requirements = ["six", *read_requirements_file(requirements_file)]

    built = await builder.build(runtime, requirements)
    reused = await builder.build(runtime, ["IDNA >= 3", "Six"])

    assert (built.cached, reused.cached) == (False, True)
    assert reused.key == built.key
    assert reused.installed_count == built.installed_count >= 6
    out = run_in(
        built.python, "import six, idna, yaml, httpx, flowyard; print(flowyard.__file__)", tmp_path
    )
    assert Path(out).is_relative_to(built.sdk_path)
    assert not Path(out).is_relative_to(Path(sys.prefix))
    record = json.loads((built.path / "flowyard-environment.json").read_text())
    assert record["requirements"] == ["httpx>=0.27", "idna>=3", "pydantic>=2.7", "pyyaml", "six"]
    assert record["size_bytes"] > 0
    assert list(built.path.rglob("six.cpython-*.pyc")), "bytecode is compiled at build time"


async def test_a_second_environment_links_the_bytecode_the_first_one_compiled(
    builder: EnvironmentBuilder, runtime: Runtime
) -> None:
    first = await builder.build(runtime, ["six"])
    second = await builder.build(runtime, ["six", "idna"])

    (first_pyc,) = first.path.rglob("six.cpython-*.pyc")
    (second_pyc,) = second.path.rglob("six.cpython-*.pyc")
    assert first_pyc.stat().st_ino == second_pyc.stat().st_ino
    out = run_in(second.python, "import six; print(six.__file__)", second.path)
    assert out.startswith(str(second.path))

    builder.evict(max_bytes=0)
    assert list((builder.cache_dir / "bytecode").rglob("*.pyc")) == []


async def test_the_servers_own_packages_are_not_visible_in_a_run_environment(
    tmp_path: Path, builder: EnvironmentBuilder, runtime: Runtime
) -> None:
    ready = await builder.build(runtime, [])

    out = run_in(
        ready.python,
        "import importlib.util as u; print(u.find_spec('sqlalchemy') is None, u.find_spec('fastapi') is None)",
        tmp_path,
    )

    assert out == "True True"


async def test_two_builds_of_the_same_new_environment_in_one_process_build_once(
    builder: EnvironmentBuilder, runtime: Runtime
) -> None:
    results = await asyncio.gather(*(builder.build(runtime, ["six"]) for _ in range(3)))

    assert sorted(r.cached for r in results) == [False, True, True]
    assert len({r.path for r in results}) == 1
    assert entries(builder.cache_dir / "envs") == [results[0].key]


async def test_two_processes_needing_the_same_new_environment_build_it_once(
    tmp_path: Path, uv_cache: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        from pathlib import Path
        from flowyard.execution.environments import EnvironmentBuilder, RuntimeRegistry
        builder = EnvironmentBuilder(Path({str(tmp_path / "cache")!r}), uv_cache_dir=Path({str(uv_cache)!r}))
        ready = asyncio.run(builder.build(RuntimeRegistry.from_settings({{}}).resolve(None), ["idna"]))
        print(json.dumps({{"cached": ready.cached, "key": ready.key}}))
        """
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
        )
        for _ in range(2)
    ]
    outputs = [json.loads(p.communicate(timeout=300)[0]) for p in processes]

    assert sorted(o["cached"] for o in outputs) == [False, True]
    assert outputs[0]["key"] == outputs[1]["key"]
    assert entries(tmp_path / "cache" / "envs") == [outputs[0]["key"]]


async def test_an_unknown_package_fails_with_uvs_message_and_leaves_nothing(
    builder: EnvironmentBuilder, runtime: Runtime
) -> None:
    with pytest.raises(EnvironmentBuildError) as caught:
        await builder.build(runtime, ["flowyard-no-such-package-xyz"])

    assert "flowyard-no-such-package-xyz was not found in the package registry" in str(caught.value)
    assert ".tmp-" not in str(caught.value)
    assert entries(builder.cache_dir / "envs") == []


async def test_a_requirement_conflicting_with_the_sdk_fails_with_the_resolvers_message(
    builder: EnvironmentBuilder, runtime: Runtime
) -> None:
    with pytest.raises(EnvironmentBuildError) as caught:
        await builder.build(runtime, ["pydantic<2"])

    message = str(caught.value)
    assert "pydantic<2" in message
    assert "pydantic>=2.7" in message
    assert "unsatisfiable" in message
    assert entries(builder.cache_dir / "envs") == []


async def test_an_unreachable_private_index_is_named_without_its_password(
    tmp_path: Path, uv_cache: Path, runtime: Runtime
) -> None:
    index = IndexSettings(index_url="http://deploy:hunter2-secret@127.0.0.1:9/simple")
    builder = EnvironmentBuilder(tmp_path / "cache", index=index, uv_cache_dir=tmp_path / "uv")

    with pytest.raises(EnvironmentBuildError) as caught:
        await builder.build(runtime, ["six"])

    assert "127.0.0.1:9" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)
    assert entries(builder.cache_dir / "envs") == []


async def test_eviction_removes_least_recently_used_environments_but_never_one_in_use(
    builder: EnvironmentBuilder, runtime: Runtime
) -> None:
    older = await builder.build(runtime, ["six"])
    newer = await builder.build(runtime, ["idna"])

    async with builder.acquire(runtime, ["six"]) as in_use:
        report = builder.evict(max_bytes=0)
        assert in_use.path.exists()

    assert (report.removed, report.in_use) == ((newer.key,), (older.key,))
    assert report.freed_bytes > 0
    assert not newer.path.exists()
    assert builder.evict(max_bytes=0).removed == (older.key,)
    assert entries(builder.cache_dir / "envs") == []


async def test_eviction_within_the_bound_removes_nothing(
    builder: EnvironmentBuilder, runtime: Runtime
) -> None:
    ready = await builder.build(runtime, ["six"])

    report = builder.evict(max_bytes=10 * 1024**3)

    assert report.removed == ()
    assert report.remaining_bytes > 0
    assert ready.path.exists()


async def test_an_interrupted_build_is_cleaned_up_by_the_next_one(
    builder: EnvironmentBuilder, runtime: Runtime
) -> None:
    key = builder.key_for(runtime, ["six"])
    stale = builder.cache_dir / "envs" / f".tmp-{key}-99999-deadbeef"
    stale.mkdir(parents=True)
    (stale / "half-written").write_text("x")

    ready = await builder.build(runtime, ["six"])

    assert not stale.exists()
    assert entries(builder.cache_dir / "envs") == [ready.key]


def test_a_configured_runtime_is_probed_for_its_version() -> None:
    runtime = probe_runtime("mine", Path(sys.executable))
    assert runtime.major_minor == f"{sys.version_info[0]}.{sys.version_info[1]}"


def test_a_configured_runtime_that_cannot_run_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-python"
    with pytest.raises(ConfigurationError, match="runtime 'broken'"):
        RuntimeRegistry.from_settings({"broken": os.fspath(missing)})
