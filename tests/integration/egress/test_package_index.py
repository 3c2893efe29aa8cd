"""pip in a run with network egress reaches PyPI through the default allow-list."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from pathlib import Path

import pytest

from flowyard.execution.egress import AllowList, EgressProxy, non_public_kind
from flowyard.execution.sandbox import Limits, LocalSandbox, MiB, NetworkMode
from flowyard.settings import Settings
from tests.conftest import missing_feature
from tests.integration.egress.conftest import ProxyFactory
from tests.integration.sandbox.conftest import RUNTIME, run_python

pytestmark = pytest.mark.sandbox

PYPI = ("pypi.org", "files.pythonhosted.org")


def intercepted_addresses() -> list[str]:
    """PyPI's addresses that this host resolves to non-public ones (an intercepting network)."""
    found: list[str] = []
    for host in PYPI:
        try:
            infos = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
        except OSError as exc:
            missing_feature(f"PyPI is not reachable from this host: {host}: {exc}")
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]))
            if non_public_kind(address) and str(address) not in found:
                found.append(str(address))
    return found


async def test_pip_downloads_from_pypi_through_the_default_allow_list(
    sandbox: LocalSandbox, start_proxy: ProxyFactory, flowyard_home: Path
) -> None:
    pip = [str(RUNTIME / "bin" / "python3"), "-m", "pip", "--version"]
    if subprocess.run(pip, capture_output=True, check=False).returncode:
        missing_feature("the test runtime has no pip")
    # Where this host's network maps PyPI to private addresses, its operator would name
    # them by IP; on an ordinary network this list is empty and the defaults suffice.
    extra = [f"{address}:443" for address in intercepted_addresses()]
    defaults = AllowList.for_settings(Settings(home=flowyard_home, egress_allow=extra), {})
    proxy: EgressProxy = await start_proxy([rule.text for rule in defaults.rules])
    result = await run_python(
        sandbox,
        "import runpy, sys\n"
        "sys.argv = ['pip', 'download', '--no-deps', '--no-cache-dir', '--disable-pip-version-check', "
        "'--index-url', 'https://pypi.org/simple', '-d', '/tmp/wheels', 'six==1.17.0']\n"
        "runpy.run_module('pip', run_name='__main__')\n",
        limits=Limits(memory_bytes=512 * MiB, storage_bytes=64 * MiB, max_run_seconds=120),
        network=NetworkMode.EGRESS,
        egress_proxy_socket=proxy.socket_path,
        env={"HTTPS_PROXY": "{egress_proxy}", "HOME": "{work}"},
    )
    assert "Successfully downloaded six" in result.output_tail, result.output_tail
    usage = proxy.take_usage(result.run_id)
    assert usage.refused == 0, usage.refusals
    assert usage.bytes_received > 10_000  # the index page and the wheel
