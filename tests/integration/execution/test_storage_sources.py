from __future__ import annotations

import io
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs

from flowyard.execution.sources import (
    PathEscapeError,
    RefusedSourceError,
    SourceUnreachableError,
    StorageSource,
)


@pytest.fixture
def s3_options(s3_endpoint: str) -> dict[str, object]:
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": s3_endpoint},
        "skip_instance_cache": True,
    }


@pytest.fixture
def bucket(s3_options: dict[str, object]) -> Iterator[tuple[s3fs.S3FileSystem, str]]:
    fs = s3fs.S3FileSystem(**s3_options)
    name = f"flows-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    yield fs, name
    fs.rm(name, recursive=True)


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


async def test_a_prefix_is_downloaded_and_then_served_from_the_cache(
    tmp_path: Path, bucket: tuple[s3fs.S3FileSystem, str], s3_options: dict[str, object]
) -> None:
    fs, name = bucket
    fs.pipe(f"{name}/etl/flows/etl.py", b"def etl():\n    return 1\n")
    fs.pipe(f"{name}/etl/requirements.txt", b"six\n")
    url = f"s3://{name}/etl"

    first = await StorageSource(url, cache_dir=tmp_path / "c", storage_options=s3_options).fetch(
        tmp_path / "r1"
    )
    second = await StorageSource(url, cache_dir=tmp_path / "c", storage_options=s3_options).fetch(
        tmp_path / "r2"
    )

    assert (first.cached, second.cached) == (False, True)
    assert first.revision == second.revision
    assert (second.path / "flows" / "etl.py").read_text().startswith("def etl")
    assert (second.path / "requirements.txt").read_bytes() == b"six\n"


async def test_a_changed_object_is_a_new_version(
    tmp_path: Path, bucket: tuple[s3fs.S3FileSystem, str], s3_options: dict[str, object]
) -> None:
    fs, name = bucket
    fs.pipe(f"{name}/app/flow.py", b"v = 1\n")
    url = f"s3://{name}/app/"
    first = await StorageSource(url, cache_dir=tmp_path / "c", storage_options=s3_options).fetch(
        tmp_path / "r1"
    )
    fs.pipe(f"{name}/app/flow.py", b"v = 2\n")

    second = await StorageSource(url, cache_dir=tmp_path / "c", storage_options=s3_options).fetch(
        tmp_path / "r2"
    )

    assert second.revision != first.revision
    assert not second.cached
    assert (second.path / "flow.py").read_bytes() == b"v = 2\n"


async def test_an_archive_is_unpacked(
    tmp_path: Path, bucket: tuple[s3fs.S3FileSystem, str], s3_options: dict[str, object]
) -> None:
    fs, name = bucket
    fs.pipe(f"{name}/releases/etl.tar.gz", tar_gz({"flows/etl.py": b"def etl(): ...\n"}))
    source = StorageSource(
        f"s3://{name}/releases/etl.tar.gz", cache_dir=tmp_path / "c", storage_options=s3_options
    )

    fetched = await source.fetch(tmp_path / "run")

    assert (fetched.path / "flows" / "etl.py").read_bytes() == b"def etl(): ...\n"
    assert fetched.kind == "storage"


async def test_an_archive_member_escaping_the_code_is_refused_and_nothing_is_cached(
    tmp_path: Path, bucket: tuple[s3fs.S3FileSystem, str], s3_options: dict[str, object]
) -> None:
    fs, name = bucket
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("../../escaped.py", "x = 1\n")
    fs.pipe(f"{name}/bad.zip", buffer.getvalue())
    source = StorageSource(
        f"s3://{name}/bad.zip", cache_dir=tmp_path / "c", storage_options=s3_options
    )

    with pytest.raises(PathEscapeError, match=r"escaped\.py"):
        await source.fetch(tmp_path / "run")

    cached = [p for p in (tmp_path / "c" / "storage").rglob("*") if p.suffix != ".lock"]
    assert [p for p in cached if p.is_file()] == []
    assert not (tmp_path / "escaped.py").exists()


async def test_a_missing_prefix_is_a_clear_error(
    tmp_path: Path, bucket: tuple[s3fs.S3FileSystem, str], s3_options: dict[str, object]
) -> None:
    _, name = bucket
    source = StorageSource(
        f"s3://{name}/nothing-here", cache_dir=tmp_path / "c", storage_options=s3_options
    )

    with pytest.raises(SourceUnreachableError, match=f"s3://{name}/nothing-here"):
        await source.fetch(tmp_path / "run")


async def test_an_in_memory_store_works_for_tests(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    prefix = f"/mem-{uuid.uuid4().hex[:8]}"
    fs.pipe(f"{prefix}/flow.py", b"print('hi')\n")
    try:
        fetched = await StorageSource(f"memory://{prefix}", cache_dir=tmp_path / "c").fetch(
            tmp_path / "run"
        )
    finally:
        fs.rm(prefix, recursive=True)

    assert (fetched.path / "flow.py").read_bytes() == b"print('hi')\n"


@pytest.mark.parametrize(
    "url", ["ftp://host/code", "http://host/code.zip", "simplecache::s3://b/k", "file:///etc"]
)
def test_unsupported_and_local_storage_urls_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(RefusedSourceError):
        StorageSource(url, cache_dir=tmp_path)
