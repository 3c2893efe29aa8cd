"""Running git for one remote: a clean environment, in-memory auth, redacted errors.

The token never touches disk or argv. It travels as an ``http.<url>.extraHeader``
entry in ``GIT_CONFIG_*`` environment variables, which git reads as if they
were ``-c`` options but which only the same user can see (``/proc/<pid>/environ``),
and which is scoped to the remote's URL so a redirect elsewhere does not get it.
``GIT_ALLOW_PROTOCOL`` repeats the URL allow-list inside git itself, so that no
submodule or redirect can reach ``ext::`` either.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flowyard.execution.sources._errors import SourceError, SourceUnreachableError
from flowyard.execution.sources._git_urls import GitRemote
from flowyard.execution.sources._redaction import redact, secret_forms

logger = logging.getLogger(__name__)

# Git variables from the server's own environment that would redirect or
# reconfigure our commands.
_INHERITED_GIT_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
)


def default_username(host: str) -> str:
    """The user name hosts expect next to an access token in Basic auth."""
    lowered = host.lower()
    if "gitlab" in lowered:
        return "oauth2"
    if "bitbucket" in lowered:
        return "x-token-auth"
    return "x-access-token"


@dataclass(frozen=True)
class GitCommand:
    """How to run git against one remote."""

    remote: GitRemote
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    timeout_seconds: float = 600.0

    @property
    def secrets(self) -> tuple[str, ...]:
        if not self.token:
            return ()
        users = {self.username or "", default_username(self.remote.host), "x-access-token"}
        return secret_forms(self.token, sorted(users))

    def environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in _INHERITED_GIT_VARIABLES and not k.startswith("GIT_CONFIG_")
        }
        env.update(
            GIT_TERMINAL_PROMPT="0",
            # http may redirect to https; nothing may redirect elsewhere.
            GIT_ALLOW_PROTOCOL="http:https" if self.remote.kind == "http" else self.remote.protocol,
            LC_ALL="C",
            LANGUAGE="C",
        )
        # Never wait for a passphrase or host-key question nobody can answer
        # (the operator's core.sshCommand / GIT_SSH_COMMAND are left alone).
        env["SSH_ASKPASS_REQUIRE"] = "never"
        if self.token and self.remote.kind in ("https", "http"):
            user = self.username or default_username(self.remote.host)
            basic = base64.b64encode(f"{user}:{self.token}".encode()).decode()
            env.update(
                GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0=f"http.{self.remote.url}.extraHeader",
                GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
            )
        return env

    def run(
        self,
        args: Sequence[str],
        *,
        git_dir: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        network: bool = False,
        action: str = "run git",
    ) -> str:
        """Run ``git <args>`` and return stdout; raise a redacted :class:`SourceError`."""
        argv = ["git"]
        if git_dir is not None:
            argv.append(f"--git-dir={git_dir}")
        argv.extend(args)
        env = self.environment()
        if extra_env:
            env.update(extra_env)
        try:
            # A session of its own: no controlling terminal for ssh to prompt
            # on, and one process group to kill (git, its helpers, ssh).
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise SourceError("git is not installed on this server") from exc
        try:
            stdout, stderr = process.communicate(timeout=self.timeout_seconds)
        except subprocess.TimeoutExpired as exc:
            _kill_group(process)
            raise SourceUnreachableError(
                f"could not {action} {self.remote.url}: git took longer than "
                f"{self.timeout_seconds:g} s"
            ) from exc
        except BaseException:
            _kill_group(process)
            raise
        done = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
        if done.returncode != 0:
            detail = self.explain(done.stderr)
            logger.debug("git %s failed: %s", args[0] if args else "", detail)
            error = SourceUnreachableError if network else SourceError
            raise error(f"could not {action} {self.remote.url}: {detail}")
        return done.stdout

    def explain(self, stderr: str) -> str:
        """git's own last words, without secrets, on one line."""
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        meaningful = [
            line for line in lines if line.startswith(("fatal:", "error:", "remote:"))
        ] or lines
        text = "; ".join(meaningful[-3:]) or "git failed without a message"
        return redact(text, self.secrets)


def _kill_group(process: subprocess.Popen[str]) -> None:
    # ProcessLookupError: the whole group has exited already, nothing to kill.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
