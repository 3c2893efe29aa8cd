"""The host probe's parsing and the checks `flowyard doctor` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowyard.execution import host
from flowyard.execution.host import CgroupLayout, HostCapabilities
from flowyard.execution.sandbox import IsolationUnavailable, LocalSandbox, Sandbox, SandboxError

HYBRID_MOUNTINFO = """\
25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
36 33 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
37 33 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
38 33 0:33 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
39 33 0:34 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
40 33 0:35 /docker/abc /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
41 30 0:36 / /mnt/with\\040space rw - cgroup cgroup rw,blkio
"""
PROC_CGROUP = """\
12:freezer:/docker/abc/inner
5:cpu,cpuacct:/service
4:memory:/service
3:pids:/
1:name=systemd:/init.scope
0::/init.scope
"""


def test_mountinfo_lists_cgroup_mounts_with_their_controllers() -> None:
    mounts = {str(m.mount_point): m for m in host.parse_mountinfo(HYBRID_MOUNTINFO)}
    assert mounts["/sys/fs/cgroup/cpu,cpuacct"].controllers == {"cpu", "cpuacct"}
    assert mounts["/sys/fs/cgroup/unified"].fstype == "cgroup2"
    assert mounts["/sys/fs/cgroup/systemd"].controllers == frozenset()
    assert mounts["/sys/fs/cgroup/freezer"].root == "/docker/abc"
    assert "/mnt/with space" in mounts
    assert "/sys" not in mounts


def test_proc_cgroup_maps_each_controller_to_its_path() -> None:
    paths = host.parse_proc_cgroup(PROC_CGROUP)
    assert paths["cpu"] == paths["cpuacct"] == "/service"
    assert paths["freezer"] == "/docker/abc/inner"
    assert paths[""] == "/init.scope"


def fake_proc(tmp_path: Path, cgroup_root: Path) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    mountinfo = HYBRID_MOUNTINFO.replace("/sys/fs/cgroup", str(cgroup_root))
    (proc / "self" / "mountinfo").write_text(mountinfo)
    (proc / "self" / "cgroup").write_text(PROC_CGROUP)
    for name in ("memory", "cpu,cpuacct", "pids", "freezer", "unified"):
        (cgroup_root / name).mkdir(parents=True)
    (cgroup_root / "unified" / "init.scope").mkdir()
    (cgroup_root / "unified" / "init.scope" / "cgroup.controllers").write_text("")
    (cgroup_root / "unified" / "init.scope" / "cgroup.subtree_control").write_text("")
    return proc


def test_v1_runs_go_under_the_servers_own_cgroup_by_default(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    layout = host.discover_cgroups(proc=fake_proc(tmp_path, root))
    assert layout.version == 1
    assert layout.dirs["memory"] == root / "memory" / "service"
    assert layout.dirs["cpu"] == layout.dirs["cpuacct"] == root / "cpu,cpuacct" / "service"
    # the freezer hierarchy is mounted at /docker/abc: the path is relative to that
    assert layout.dirs["freezer"] == root / "freezer" / "inner"
    assert {"memory", "cpu", "cpuacct", "pids", "freezer"} <= layout.writable


def test_an_explicit_parent_is_used_in_every_hierarchy(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    layout = host.discover_cgroups("/flowyard", proc=fake_proc(tmp_path, root))
    assert layout.dirs["pids"] == root / "pids" / "flowyard"
    assert layout.dirs["pids"].is_dir()


def test_delegated_v2_controllers_win_over_v1(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    proc = fake_proc(tmp_path, root)
    scope = root / "unified" / "init.scope"
    (scope / "cgroup.controllers").write_text("cpu memory pids\n")
    (scope / "cgroup.subtree_control").write_text("cpu memory pids\n")
    layout = host.discover_cgroups(proc=proc)
    assert layout.version == 2
    assert set(layout.dirs.values()) == {scope}


def caps(**changes: object) -> HostCapabilities:
    good = HostCapabilities(
        is_root=True, kernel="6.1", bwrap_path=Path("/usr/bin/bwrap"), bwrap_version="0.8.0",
        namespaces_error=None, user_namespaces=True, setpriv_path=Path("/usr/bin/setpriv"),
        cgroups=CgroupLayout(1, {}, frozenset({"memory", "cpu", "cpuacct", "pids", "freezer"}), True),
        cgroup_error=None, loop_devices=True, mkfs_ext4_path=Path("/usr/sbin/mkfs.ext4"),
    )  # fmt: skip
    fields = {**good.__dict__, **changes}
    fields.pop("checks")
    made = HostCapabilities(**fields)  # type: ignore[arg-type]
    return HostCapabilities(**{**made.__dict__, "checks": tuple(host._checks(made))})


def test_a_capable_host_passes_every_required_check() -> None:
    found = caps()
    assert found.missing() == ()
    assert all(check.ok for check in host.host_checks(found))


def test_each_missing_feature_is_named_with_a_fix() -> None:
    found = caps(
        is_root=False, bwrap_path=None, namespaces_error="bubblewrap not found", loop_devices=False,
        mkfs_ext4_path=None, cgroups=CgroupLayout(1, {}, frozenset({"memory"})),
    )  # fmt: skip
    missing = "\n".join(found.missing())
    for expected in (
        "running as root",
        "bubblewrap",
        "cgroups v1",
        "cpu",
        "pids",
        "loop devices",
        "mkfs.ext4",
        "apt-get install e2fsprogs",
    ):
        assert expected in missing


def test_without_root_user_namespaces_become_required() -> None:
    names = {c.name: c for c in caps(is_root=False, user_namespaces=False).checks}
    assert names["user namespaces"].required
    assert not names["user namespaces"].ok
    assert not {c.name: c for c in caps().checks}["user namespaces"].required


def test_a_missing_freezer_is_a_warning_not_a_refusal() -> None:
    found = caps(cgroups=CgroupLayout(1, {}, frozenset({"memory", "cpu", "cpuacct", "pids"})))
    freezer = {c.name: c for c in found.checks}["cgroup freezer"]
    assert not freezer.ok
    assert not freezer.required
    assert found.missing() == ()


def test_strict_isolation_refuses_with_the_list_of_what_is_missing(tmp_path: Path) -> None:
    found = caps(bwrap_path=None, namespaces_error="bubblewrap not found")
    with pytest.raises(IsolationUnavailable) as raised:
        LocalSandbox(tmp_path / "state", capabilities=found)
    assert any("bubblewrap" in item for item in raised.value.missing)
    assert "isolation to 'none'" in str(raised.value)


def test_isolation_none_starts_anyway_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox: Sandbox = LocalSandbox(
        tmp_path / "state", isolation="none", capabilities=caps(bwrap_path=None)
    )
    assert isinstance(sandbox, LocalSandbox)
    try:
        assert sandbox.isolation == "none"
        assert "nothing is isolated" in sandbox.describe()
        assert "nothing is isolated" in caplog.text
    finally:
        sandbox.close()


def test_two_sandboxes_cannot_share_a_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowyard.execution.sandbox import _local_support

    monkeypatch.setattr(_local_support, "_LOCK_WAIT_SECONDS", 0.1)  # it waits for a dying holder
    first = LocalSandbox(tmp_path / "state", isolation="none", capabilities=caps())
    try:
        with pytest.raises(SandboxError, match="in use by another sandbox"):
            LocalSandbox(tmp_path / "state", isolation="none", capabilities=caps())
    finally:
        first.close()


def test_zygotes_are_reported_and_never_refuse_a_host() -> None:
    assert {c.name: c for c in caps().checks}["zygotes"].ok
    without_root = {c.name: c for c in caps(is_root=False).checks}["zygotes"]
    assert not without_root.ok
    assert not without_root.required
    assert "start cold" in without_root.detail
