"""The UI's pages, one module per area; ``ROUTERS`` in the order they are mounted."""

from __future__ import annotations

from flowyard.ui.views import (
    artifacts,
    auth,
    dashboard,
    deployments,
    fallback,
    log_panel,
    run_detail,
    runs,
    settings,
    usage,
    work_pools,
)

ROUTERS = (
    auth.router,
    dashboard.router,
    runs.router,
    run_detail.router,
    log_panel.router,
    artifacts.router,
    deployments.router,
    work_pools.router,
    usage.router,
    settings.router,
    fallback.router,  # last: it answers every path nothing else claimed
)
