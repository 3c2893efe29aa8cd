"""A loaded interpreter that forks each managed run into its own sandbox.

Every run of an environment starts the same way: an interpreter starts and
imports Flowyard, ~80 ms of CPU that is the same for each. The zygote pays it
once per environment. It runs as root in a bubblewrap sandbox of the run's
own layout (the runtime, environment and SDK at the paths a run sees), in the
host's pid namespace, with only the capabilities it needs to enter another
sandbox and leave root: ``SYS_ADMIN``, ``SYS_CHROOT``, ``SETUID``,
``SETGID``, ``SETPCAP``. It is started with ``-S``: no ``.pth`` file, no
package of the run's environment, nothing but the standard library and
Flowyard's own SDK ever runs in it. It never holds a run's secrets: a run's
variables travel in a descriptor it passes on unread.

The server prepares each run's sandbox as usual (bubblewrap, cgroup, disk),
with a *holder* as its command (``_zygotes.HOLDER``): a shell, already the sandbox
user, that says it is ready on one FIFO in the run's ``/tmp`` and waits for
the run's ending on another. Then it sends the zygote a request over a unix
socket: bubblewrap's pid and descriptors for the two FIFOs, the run's
variables, its output file and its cgroup's ``cgroup.procs`` files.

For each request the zygote forks a child, which acknowledges it, waits for
the holder, joins the run's cgroups, enters its cgroup, IPC, UTS, network,
pid and mount namespaces (those of bubblewrap's init), and forks the run's
process: born inside the sandbox's pid namespace, it leaves root (bounding
set emptied, groups cleared, uid and gid set, every capability cleared,
``no_new_privs``), checks that it holds nothing, starts a session, reads
the run's variables to the end of their descriptor (a held sandbox's
process waits there until a run takes the sandbox), runs the environment's ``site`` (its ``.pth`` files run
as the sandbox user, as in any run) and goes on as ``python -m <module>``
would (the runner's module, for managed runs). The child waits for it and
writes how it ended to the holder, which exits the same way (128 + N for a
signal), so bubblewrap, the cgroup and the supervisor see what they always
see.

If anything fails before the run's process exists, the child writes
``cold`` and the holder execs the runner itself, as a run without a zygote
starts: the run starts late, never wrongly. A held sandbox's holder has no
run's variables to start one with: there the child writes ``lost`` and why,
and the sandbox ends.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import NoReturn

# What the holder reads: "exit N", "signal N", "cold" or "lost 0 <why>".
READY_SECONDS = 60.0
MAX_REQUEST = 64 * 1024
MAX_FDS = 16
# Modules every run imports before its flow: loaded once here.
PRELOAD = (
    "flowyard.client._errors",
    "flowyard.client._wire",
    "flowyard.client.sdk_integration",
    "flowyard.sdk",
    "flowyard.sdk._entrypoints",
    "flowyard.execution.runner",
    "runpy",
    "site",
)
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_CAP_VERSION_3 = 0x20080522
_NAMESPACES = ("cgroup", "ipc", "uts", "net", "pid", "mnt")  # mnt last: it changes /proc
_COERCED_CTYPE: str | None = None
_STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def main(sock_fd: int) -> None:
    """Load what runs need, then serve requests on ``sock_fd`` until it closes."""
    import importlib

    global _COERCED_CTYPE
    _COERCED_CTYPE = os.environ.get("LC_CTYPE")

    for name in PRELOAD:
        importlib.import_module(name)
    time.strftime("%H", time.localtime())  # the time zone read once here, not by each run
    libc = ctypes.CDLL(None, use_errno=True)
    # What is loaded now stays out of the collector's reach: a run's collections would
    # otherwise touch every object, copying each page its fork shares with the zygote.
    gc.collect()
    gc.freeze()
    last_cap = int(_read("/proc/sys/kernel/cap_last_cap"))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    sock = socket.socket(fileno=sock_fd)
    sock.send(b"ready")
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST, MAX_FDS)
        except InterruptedError:
            continue
        if not data:
            return
        if threading.active_count() != 1:  # a fork must copy one thread only
            raise RuntimeError("the zygote must stay single-threaded")
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            code = 1
            try:
                sock.close()
                code = _serve(json.loads(data), fds, libc, last_cap)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)


def _serve(request: dict[str, object], fds: list[int], libc: ctypes.CDLL, last_cap: int) -> int:
    """The child for one run: acknowledge, enter the sandbox, fork the run, report its end."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for signum in _STOPPING:  # stopping a run signals all its processes: this one waits on
        signal.signal(signum, signal.SIG_IGN)
    ack, ready, exit_fifo, env_fd, output = fds[:5]
    procs = fds[5:]
    os.write(ack, b"ok")
    os.close(ack)
    try:
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")  # as every process of a run: a shortage takes a run first
        _wait_ready(ready)
        _enter(request, procs, libc, exit_fifo)
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        pid = os.fork()
    except Exception as exc:  # any failure: the run starts without the zygote, if it can
        if request.get("fallback", True):
            print(f"flowyard: zygote could not start the run ({exc}); starting it cold",
                  file=sys.stderr)  # fmt: skip
            os.write(exit_fifo, b"cold\n")
        else:
            reason = " ".join(f"the zygote failed: {exc}".split())[:500]
            os.write(exit_fifo, f"lost 0 {reason}\n".encode())
        return 1
    if pid == 0:
        try:
            os.close(exit_fifo)
            _become_run(request, env_fd, libc, last_cap)
        except BaseException as exc:  # never return into the zygote's code
            print(f"flowyard: the run's process could not start: {exc!r}", file=sys.stderr)
            sys.stderr.flush()
            os._exit(125)
        _run_module(str(request["module"]))
    os.close(env_fd)
    for fd in range(3):
        os.close(fd)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        os.write(exit_fifo, f"signal {os.WTERMSIG(status)}\n".encode())
    else:
        os.write(exit_fifo, f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
    return 0


def _wait_ready(ready: int) -> None:
    """Until the holder says it is ready: the sandbox is complete then."""
    deadline = time.monotonic() + READY_SECONDS
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the sandbox was not ready after {READY_SECONDS:.0f} s")
        readable, _, _ = select.select([ready], [], [], left)
        if readable:
            said = os.read(ready, 64)
            os.close(ready)
            if not said:
                raise RuntimeError("the sandbox ended before it was ready")
            return


def _enter(request: dict[str, object], procs: list[int], libc: ctypes.CDLL, exit_fifo: int) -> None:
    """Join the run's cgroups and the namespaces of its bubblewrap init.

    The processes are read through ``/proc/<pid>`` directory descriptors, which
    stay bound to the process they were opened for (a pid reused meanwhile
    fails the reads), and the mount namespace entered must show, at the path
    the holder used, the very FIFO this child holds: else it is not the run's.
    """
    bwrap = int(str(request["bwrap_pid"]))
    bwrap_dir = os.open(f"/proc/{bwrap}", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with open(f"task/{bwrap}/children", opener=_opener(bwrap_dir)) as fh:
            children = fh.read().split()
    finally:
        os.close(bwrap_dir)
    if len(children) != 1:
        raise RuntimeError(f"bubblewrap {bwrap} has no single init process: {children}")
    init_dir = os.open(f"/proc/{children[0]}", os.O_RDONLY | os.O_DIRECTORY)
    try:
        namespaces = [os.open(f"ns/{name}", os.O_RDONLY, dir_fd=init_dir) for name in _NAMESPACES]
    finally:
        os.close(init_dir)
    for fd in procs:
        os.write(fd, b"0")  # cgroup v1 and v2: "0" moves the writer
        os.close(fd)
    for fd in namespaces:
        if libc.setns(fd, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns: {os.strerror(err)}")
        os.close(fd)
    held, seen = os.fstat(exit_fifo), os.stat(str(request["exit_fifo"]))
    if (held.st_dev, held.st_ino) != (seen.st_dev, seen.st_ino):
        raise RuntimeError("the namespaces entered are not the run's sandbox's")
    os.chdir(str(request["workdir"]))


def _opener(dir_fd: int) -> Callable[[str, int], int]:
    return lambda path, flags: os.open(path, flags, dir_fd=dir_fd)


def _become_run(request: dict[str, object], env_fd: int, libc: ctypes.CDLL, last_cap: int) -> None:
    """In the run's pid namespace: leave root for good, take the run's variables, run."""
    uid, gid = int(str(request["uid"])), int(str(request["gid"]))
    os.setsid()
    for cap in range(last_cap + 1):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"cannot drop capability {cap}")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    header, cleared = _CapHeader(_CAP_VERSION_3, 0), (_CapData * 2)()
    if libc.capset(ctypes.byref(header), cleared) != 0:
        raise OSError(ctypes.get_errno(), "cannot clear capabilities")
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot set no_new_privs")
    _check_unprivileged(uid, gid)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for signum in (signal.SIGCHLD, *_STOPPING):  # as a fresh interpreter has them
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.closerange(3, env_fd)
    os.closerange(env_fd + 1, 1 << 16)
    with os.fdopen(env_fd, "rb") as fh:  # a held sandbox's process waits here for its run
        data = fh.read()
    if not data:  # the sandbox was discarded before a run took it
        os._exit(0)
    env = json.loads(data)
    if "LC_CTYPE" not in env and _COERCED_CTYPE is not None:
        env["LC_CTYPE"] = _COERCED_CTYPE  # what this interpreter's start set (PEP 538)
    os.environ.clear()
    os.environ.update(env)
    sys.argv[:] = [""]  # runpy puts the module's path first, as ``-m`` does
    _start_site(str(request["sdk_path"]), str(request["workdir"]))


def _run_module(module: str) -> NoReturn:
    """Run ``module`` as ``__main__`` and end the process as the interpreter would."""
    import runpy

    from flowyard.execution.runner import flush_and_wait

    code = 0
    try:
        runpy._run_module_as_main(module)  # type: ignore[attr-defined]
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        flush_and_wait()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # as Python ends: by the signal
        code = 130
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    flush_and_wait()
    os._exit(code)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _check_unprivileged(uid: int, gid: int) -> None:
    """Refuse to go on unless the process holds exactly what a sandboxed run may."""
    fields = dict(
        line.split(":", 1) for line in _read("/proc/self/status").splitlines() if ":" in line
    )
    caps = [int(fields[name].strip(), 16) for name in ("CapInh", "CapPrm", "CapEff", "CapBnd")]
    caps.append(int(fields.get("CapAmb", "0").strip(), 16))
    uids = {int(v) for v in fields["Uid"].split()}
    gids = {int(v) for v in fields["Gid"].split()}
    if any(caps) or uids != {uid} or gids != {gid} or fields["Groups"].strip():
        raise PermissionError("the run's process still holds privileges")
    if fields.get("NoNewPrivs", "").strip() != "1":
        raise PermissionError("the run's process lacks no_new_privs")


def _start_site(sdk_path: str, workdir: str) -> None:
    """``sys.path`` as ``python -m`` in the environment would have it, ``.pth`` files run."""
    import site

    sys.path[:] = [workdir, *(p for p in sys.path[1:] if p != sdk_path)]
    site.main()
    if sdk_path not in sys.path:  # the environment's .pth names it; keep the SDK loaded reachable
        sys.path.append(sdk_path)


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


if __name__ == "__main__":
    main(int(sys.argv[1]))
