"""Storage: SQLAlchemy models, engines and migrations."""

from __future__ import annotations

from flowyard.server.db.engine import (
    Database,
    StorageError,
    check_connection,
    create_database,
    redact_url,
)

__all__ = ["Database", "StorageError", "check_connection", "create_database", "redact_url"]
