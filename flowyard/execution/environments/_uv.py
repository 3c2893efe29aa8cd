"""Running the packaged uv binary with a clean, explicit configuration.

uv reads configuration from many places (``uv.toml``, ``pyproject.toml`` in the
working directory, ``UV_*`` variables). An environment's key only covers what
Flowyard passes, so everything else is switched off: ``--no-config``, no
``UV_*`` from the server's environment, no Python downloads. Network settings
that are the host's business (proxies, ``SSL_CERT_FILE``) pass through.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from uv import find_uv_bin

from flowyard.execution import sources
from flowyard.execution.environments._errors import EnvironmentBuildError

_DROPPED = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def packaged_uv() -> Path:
    """The uv binary installed with Flowyard."""
    return Path(find_uv_bin())


@dataclass(frozen=True)
class Uv:
    """uv with a shared cache directory; ``secrets`` are redacted from its messages."""

    binary: Path
    cache_dir: Path
    timeout_seconds: float = 1800.0
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UV_") and k not in _DROPPED}
        env.update(
            UV_CACHE_DIR=str(self.cache_dir),
            UV_PYTHON_DOWNLOADS="never",
            UV_NO_PROGRESS="1",
            NO_COLOR="1",
        )
        return env

    def run(self, args: Sequence[str], *, cwd: Path, what: str) -> str:
        """Run ``uv <args>``; on failure raise with uv's own explanation. Returns stderr."""
        try:
            done = subprocess.run(
                [str(self.binary), *args],
                cwd=cwd,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EnvironmentBuildError(
                f"{what} took longer than {self.timeout_seconds:g} s and was stopped"
            ) from exc
        except OSError as exc:
            raise EnvironmentBuildError(f"{what}: cannot run uv at {self.binary}: {exc}") from exc
        if done.returncode != 0:
            raise EnvironmentBuildError(f"{what} failed:\n{self.clean(done.stderr or done.stdout)}")
        return done.stderr

    def clean(self, text: str) -> str:
        """uv's message without colour codes, secrets or its temporary paths."""
        lines = [
            line
            for line in _ANSI.sub("", text).splitlines()
            if line.strip() and not line.startswith("Using Python")
        ]
        return sources.redact("\n".join(lines) or "uv failed without a message", self.secrets)
