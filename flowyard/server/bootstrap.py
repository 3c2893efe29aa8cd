"""First start: a default workspace and an admin key, printed once and saved."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from flowyard.server.context import ServerContext
from flowyard.server.ops import workspaces

logger = logging.getLogger("flowyard.server")


def credentials_path(home: Path) -> Path:
    return home / "credentials"


def save_credentials(path: Path, api_url: str, api_key: str) -> None:
    """Write ``{"api_url", "api_key"}`` with mode 0600 (created that way, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"api_url": api_url, "api_key": api_key}, fh)
    os.replace(tmp, path)


async def bootstrap(ctx: ServerContext) -> None:
    async with ctx.db.session() as session:
        key = await workspaces.bootstrap(session)
    if key is None:
        return
    settings = ctx.settings
    path = credentials_path(settings.home)
    try:
        save_credentials(path, settings.effective_api_url, key)
        where = f"saved to {path}"
    except OSError as exc:
        where = f"could not be saved to {path}: {exc.strerror}"
    # Printed once on purpose: the database keeps only a hash.
    print(
        f"Created workspace 'default' and an admin API key ({where}):\n\n    {key}\n",
        flush=True,
    )
