"""The bubblewrap command line for one run.

The server runs bubblewrap as root, so it can bind what the run needs from
anywhere, then drops to the sandbox user with ``setpriv`` before anything of
the run executes. bubblewrap's own user namespace is not used: as root it
would map the sandbox user to host root, whereas a real unprivileged uid in
new pid, mount, ipc, uts, cgroup and network namespaces, with no
capabilities and ``no_new_privs``, holds nothing on the host.

Nothing privileged runs with the caller's environment (a run's ``LD_PRELOAD``
must never reach a root process): bubblewrap and ``setpriv`` start with an
empty one, and a shell running as the sandbox user reads the run's variables
from its stdin (a memfd) just before it execs the command. The variables
never appear on a command line.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flowyard.execution.host import system_dirs_args
from flowyard.execution.sandbox._layout import (
    API_SOCKET_DIR,
    API_SOCKET_PATH,
    EGRESS_SOCKET_DIR,
    EGRESS_SOCKET_PATH,
    ENVIRONMENT_PATH,
    RUNTIME_PATH,
    SDK_PATH,
    TMP_PATH,
    WORK_PATH,
)
from flowyard.execution.sandbox._runtime import EnvironmentView, RuntimeView
from flowyard.execution.sandbox._spec import NetworkMode, SandboxSpec

HOSTNAME = "flowyard"
# The loader, ``sh -s`` as the sandbox user with an empty environment, reads the
# run's script from stdin as it is (the pipe, whose owner is root, cannot be
# reopened): the prelude, the variables, ``set --`` with the command, then this.
LOADER_TAIL = 'set +a; exec </dev/null; exec "$@"'
PRELUDE_FAILED_EXIT = 125
# What a zygote needs to enter a run's namespaces (SYS_ADMIN, SYS_CHROOT) and to make
# the run's process the sandbox user (SETUID, SETGID, SETPCAP for the bounding set).
ZYGOTE_CAPS = ("CAP_SYS_ADMIN", "CAP_SYS_CHROOT", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")


@dataclass(frozen=True)
class Mounts:
    """Host-side pieces of a run's filesystem."""

    runtime: RuntimeView
    environment: EnvironmentView | None
    work_dir: Path
    tmp_dir: Path
    etc: Path  # the prepared /etc (see ``_etc``)
    # Directories holding a link to the API's (egress proxy's) socket, bound instead of
    # the socket file so that runs reach a restarted server; None: bind the file.
    api_socket_dir: Path | None = None
    egress_socket_dir: Path | None = None

    @property
    def python(self) -> str:
        """The interpreter a run starts, as it sees it: the environment's, else the runtime's."""
        return self.environment.python if self.environment else self.runtime.python


def bwrap_options(spec: SandboxSpec, mounts: Mounts, *, status_fd: int) -> list[str]:
    """Options for ``bwrap --args`` (read from a file descriptor, so off the command line)."""
    args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup"]
    if spec.network is not NetworkMode.HOST:
        args.append("--unshare-net")
    args += ["--hostname", HOSTNAME, "--new-session", "--json-status-fd", str(status_fd)]
    args.append("--clearenv")  # setpriv and the loader start empty; the loader adds the run's
    # setpriv needs these three to drop to the sandbox user; the user gets none.
    args += ["--cap-drop", "ALL"]
    for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
        args += ["--cap-add", cap]
    dirs = _system_args(args, mounts)
    _python_args(dirs, spec, mounts)
    if mounts.api_socket_dir is not None:
        dirs.bind(mounts.api_socket_dir, API_SOCKET_DIR)
    elif spec.api_socket is not None:
        dirs.bind(spec.api_socket, API_SOCKET_PATH)
    if mounts.egress_socket_dir is not None:
        dirs.bind(mounts.egress_socket_dir, EGRESS_SOCKET_DIR)
    elif spec.egress_proxy_socket is not None:
        dirs.bind(spec.egress_proxy_socket, EGRESS_SOCKET_PATH)
    args += ["--bind", str(mounts.work_dir), WORK_PATH, "--bind", str(mounts.tmp_dir), TMP_PATH]
    args += ["--remount-ro", "/", "--chdir", WORK_PATH]
    return args


def zygote_options(spec: SandboxSpec, mounts: Mounts, env: Mapping[str, str]) -> list[str]:
    """Options for a zygote's bubblewrap: a run's Python layout, root with :data:`ZYGOTE_CAPS`.

    No pid namespace (it enters runs' pid namespaces, which must be below its
    own), no network, no work dir; ``env`` is all it starts with. Not
    ``--die-with-parent``: that follows the thread that started it; the zygote
    exits when its socket to the server closes instead.
    """
    args = ["--unshare-ipc", "--unshare-uts", "--unshare-net"]
    args += ["--hostname", HOSTNAME, "--clearenv"]
    for name, value in env.items():
        args += ["--setenv", name, value]
    args += ["--cap-drop", "ALL"]
    for cap in ZYGOTE_CAPS:
        args += ["--cap-add", cap]
    dirs = _system_args(args, mounts)
    _python_args(dirs, spec, mounts)
    dirs.make(WORK_PATH)
    args += ["--remount-ro", "/", "--chdir", "/"]
    return args


def command_tail(*, setpriv: Path, uid: int, gid: int) -> list[str]:
    """What bubblewrap runs: drop to the sandbox user, then the loader (see :func:`run_script`)."""
    drop = [str(setpriv), f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    drop += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    return ["--", *drop, "--", "/bin/sh", "-s"]


def run_script(env: Mapping[str, str], argv: list[str], *, prelude: str | None = None) -> bytes:
    """The loader's script: an optional prelude, the run's variables, its command.

    A failing ``prelude`` (run first, before any variable is set) ends the run
    with :data:`PRELUDE_FAILED_EXIT` and a ``flowyard:`` line on stderr. The
    shell reads it from its stdin, so no process is spent reading it.
    """
    lines = ["unset PWD"]
    if prelude:
        lines.append(
            f"{prelude} || {{ echo 'flowyard: sandbox prelude failed' >&2; exit {PRELUDE_FAILED_EXIT}; }}"
        )
    lines.append("set -a")
    lines += [f"{name}={shlex.quote(value)}" for name, value in env.items()]
    lines.append("set -- " + " ".join(shlex.quote(arg) for arg in argv))
    lines.append(LOADER_TAIL)
    return ("\n".join(lines) + "\n").encode()


def account_files(uid: int, gid: int) -> tuple[str, str]:
    """``/etc/passwd`` and ``/etc/group`` naming only root and the sandbox user."""
    passwd = (
        f"root:x:0:0:root:/root:/usr/sbin/nologin\nflowyard:x:{uid}:{gid}:run:{WORK_PATH}:/bin/sh\n"
    )
    group = f"root:x:0:\nflowyard:x:{gid}:\n"
    return passwd, group


def _system_args(args: list[str], mounts: Mounts) -> _Dirs:
    """The host's system dirs, /proc, /dev and the prepared /etc (one mount, see ``_etc``)."""
    args += system_dirs_args()
    args += ["--proc", "/proc", "--dev", "/dev"]
    dirs = _Dirs(args)
    dirs.bind(mounts.etc, "/etc")
    return dirs


def _python_args(dirs: _Dirs, spec: SandboxSpec, mounts: Mounts) -> None:
    """The runtime, the environment, the SDK and the operator's read-only binds."""
    _runtime_args(dirs, mounts.runtime)
    if mounts.environment is not None:
        _environment_args(dirs, mounts.environment, mounts.runtime)
    if spec.sdk_dir is not None:
        dirs.bind(spec.sdk_dir, SDK_PATH)
    for bind in spec.ro_binds:
        dirs.bind(bind.source, bind.target)


def _runtime_args(dirs: _Dirs, runtime: RuntimeView) -> None:
    dirs.bind(runtime.directory, RUNTIME_PATH)
    if runtime.patched_binary is not None:
        dirs.args += [
            "--ro-bind",
            str(runtime.patched_binary),
            f"{RUNTIME_PATH}/bin/{runtime.python_name}",
        ]
    for library in runtime.library_dirs:
        dirs.bind(library, str(library))


def _environment_args(dirs: _Dirs, env: EnvironmentView, runtime: RuntimeView) -> None:
    dirs.make(f"{ENVIRONMENT_PATH}/bin")
    dirs.args += ["--ro-bind", str(env.directory / "lib"), f"{ENVIRONMENT_PATH}/lib"]
    if env.has_lib64:
        dirs.args += ["--symlink", "lib", f"{ENVIRONMENT_PATH}/lib64"]
    dirs.args += ["--ro-bind", str(env.pyvenv_cfg), f"{ENVIRONMENT_PATH}/pyvenv.cfg"]
    for name in ("python", "python3", f"python{env.version}"):
        dirs.args += ["--symlink", runtime.python, f"{ENVIRONMENT_PATH}/bin/{name}"]
    for generated, target in env.overrides:
        dirs.args += ["--ro-bind", str(generated), target]


class _Dirs:
    """Creates parent directories world-readable (bubblewrap's own default is 0700)."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self._made: set[str] = {"/"}

    def make(self, path: str) -> None:
        for parent in reversed(PurePosixPath(path).parents):
            self._one(str(parent))
        self._one(path)

    def bind(self, source: Path, target: str) -> None:
        self.make(str(PurePosixPath(target).parent))
        self.args += ["--ro-bind", str(source), target]

    def _one(self, path: str) -> None:
        if path not in self._made:
            self._made.add(path)
            self.args += ["--perms", "0755", "--dir", path]
