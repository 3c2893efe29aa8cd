"""Storage sources: a prefix or an archive in object storage, through fsspec.

The cache key is the listing, not the bytes: each object's version id, etag,
generation or modification time (whichever the store reports) and size,
hashed together. An unchanged prefix is therefore recognised from one listing
call and copied out of ``<cache>/storage/<url digest>/<version>``; a changed
one is downloaded into a temporary directory and renamed into place under a
per-URL lock, so a failed download leaves nothing behind. The newest few
versions per URL are kept.

If an object is rewritten between the listing and its download, the cached
copy carries the newer bytes under the older version; the next listing sees
the change and downloads again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import tarfile
import time
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import fsspec

from flowyard.execution.sources._base import FetchedSource
from flowyard.execution.sources._errors import (
    PathEscapeError,
    RefusedSourceError,
    SourceError,
    SourceUnreachableError,
)
from flowyard.execution.sources._locks import exclusive_lock
from flowyard.execution.sources._redaction import redact

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
_LOCAL_SCHEMES = frozenset({"file", "local"})
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")
# Fields that change when an object's content does, by store: S3, GCS, Azure, fsspec.
_IDENTITY_FIELDS = (
    "VersionId",
    "version_id",
    "generation",
    "ETag",
    "etag",
    "md5Hash",
    "LastModified",
    "last_modified",
    "updated",
    "mtime",
    "created",
    "size",
)


class StorageSource:
    """Code stored under ``url``: a prefix of objects, a single object, or an archive.

    ``storage_options`` go to fsspec unchanged (endpoint, credentials, ...).
    Archives (``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``)
    are unpacked; a single other object is placed under its own name.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_dir: Path,
        storage_options: Mapping[str, object] | None = None,
        allow_local: bool = False,
        keep_versions: int = 2,
    ) -> None:
        self.url = url.strip()
        self.cache_dir = cache_dir
        self._options = dict(storage_options or {})
        self._keep = max(1, keep_versions)
        scheme = self.url.partition("://")[0].lower() if "://" in self.url else ""
        if "::" in self.url:
            raise RefusedSourceError(f"chained storage URL {self.description!r} is not allowed")
        if scheme in _LOCAL_SCHEMES and not allow_local:
            raise RefusedSourceError(
                f"local storage source {self.description!r} is not allowed on this server"
            )
        if scheme not in ALLOWED_SCHEMES | _LOCAL_SCHEMES:
            allowed = ", ".join(f"{s}://" for s in sorted(ALLOWED_SCHEMES - {"memory"}))
            raise RefusedSourceError(
                f"storage URL {self.description!r} is not supported; use one of {allowed}"
            )

    @property
    def description(self) -> str:
        """The URL without credentials."""
        return redact(self.url)

    def __repr__(self) -> str:
        return f"StorageSource({self.description!r})"

    async def fetch(self, destination: Path) -> FetchedSource:
        """List the objects, download them unless that version is cached, copy them out."""
        return await asyncio.to_thread(self._fetch_blocking, destination)

    def _fetch_blocking(self, destination: Path) -> FetchedSource:
        started = time.perf_counter()
        if destination.exists() and any(destination.iterdir()):
            raise SourceError(f"destination {destination} is not empty")
        fs, root = self._filesystem()
        layout, entries = self._list(fs, root)
        version = _digest({"layout": layout, "entries": entries})[:40]
        base = self.cache_dir / "storage" / _digest(self.url)[:32]
        cached_copy = base / version
        cached = cached_copy.is_dir()
        with exclusive_lock(base.parent / f"{base.name}.lock"):
            if not cached_copy.is_dir():
                cached = False
                self._download(fs, root, layout, sorted(entries), base, cached_copy)
            # Copy under the lock so pruning never removes a version being read.
            shutil.copytree(cached_copy, destination, symlinks=True, dirs_exist_ok=True)
        return FetchedSource(
            path=destination,
            revision=version,
            duration_seconds=time.perf_counter() - started,
            cached=cached,
            kind="storage",
        )

    def _filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        try:
            fs, root = fsspec.core.url_to_fs(self.url, **self._options)
        except (ImportError, ValueError) as exc:
            raise SourceError(f"cannot open {self.description}: {redact(str(exc))}") from exc
        return fs, str(root).rstrip("/")

    def _list(self, fs: fsspec.AbstractFileSystem, root: str) -> tuple[str, dict[str, str]]:
        """``(layout, {relative path: identity})`` — layout is tree, file or archive."""
        try:
            fs.invalidate_cache()
            info = fs.info(root)
            if info.get("type") != "directory":
                layout = "archive" if root.lower().endswith(_ARCHIVE_SUFFIXES) else "file"
                return layout, {PurePosixPath(root).name: _identity(info)}
            found = fs.find(root, detail=True)
        except FileNotFoundError as exc:
            raise SourceUnreachableError(f"nothing found at {self.description}") from exc
        except OSError as exc:
            raise SourceUnreachableError(
                f"could not list {self.description}: {redact(str(exc))}"
            ) from exc
        entries: dict[str, str] = {}
        for name, detail in found.items():
            if detail.get("type") == "directory":
                continue
            relative = str(name).rstrip("/")[len(root) :].lstrip("/")
            _check_relative(relative, self.description)
            entries[relative] = _identity(detail)
        if not entries:
            raise SourceUnreachableError(f"no objects found under {self.description}")
        return "tree", entries

    def _download(
        self,
        fs: fsspec.AbstractFileSystem,
        root: str,
        layout: str,
        names: list[str],
        base: Path,
        target: Path,
    ) -> None:
        base.mkdir(parents=True, exist_ok=True)
        temp = base / f".tmp-{uuid.uuid4().hex}"
        try:
            tree = temp / "tree"
            tree.mkdir(parents=True)
            if layout == "tree":
                remote = [f"{root}/{name}" for name in names]
                local = [str(tree / name) for name in names]
                for path in local:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                fs.get(remote, local)
            elif layout == "file":
                fs.get_file(root, str(tree / names[0]))
            else:
                archive = temp / names[0]
                fs.get_file(root, str(archive))
                _unpack(archive, tree)
            os.rename(tree, target)
        except (OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
            raise SourceUnreachableError(
                f"could not download {self.description}: {redact(str(exc))}"
            ) from exc
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        self._prune(base, keep=target)

    def _prune(self, base: Path, keep: Path) -> None:
        versions = sorted(
            (p for p in base.iterdir() if p.is_dir() and p != keep),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in versions[self._keep - 1 :]:
            shutil.rmtree(old, ignore_errors=True)


def _identity(detail: Mapping[str, object]) -> str:
    return json.dumps(
        {k: detail[k] for k in _IDENTITY_FIELDS if detail.get(k) is not None},
        sort_keys=True,
        default=str,
    )


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _check_relative(name: str, where: str) -> None:
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts:
        raise PathEscapeError(f"object {name!r} under {where} would land outside the code")


def _unpack(archive: Path, into: Path) -> None:
    """Unpack refusing members that escape ``into`` (absolute, ``..``, outside links)."""
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                _check_relative(name.rstrip("/") or ".", archive.name)
            zf.extractall(into)
        return
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            _check_relative(member.name.rstrip("/") or ".", archive.name)
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                raise PathEscapeError(f"archive member {member.name!r} is not a file or directory")
        # The "data" filter also refuses links pointing outside and strips modes.
        tf.extractall(into, filter="data")
