"""A flaky dependency behind retries with per-attempt delays and jitter."""

from flowyard import flow, task
from flowyard.logging import get_run_logger

ATTEMPTS: dict[str, int] = {}


class RateLimited(Exception):
    pass


@task(retries=4, retry_delay_seconds=[0.01, 0.02, 0.04], retry_jitter_factor=0.2)
def call_api(endpoint: str, fail_times: int) -> dict[str, object]:
    ATTEMPTS[endpoint] = ATTEMPTS.get(endpoint, 0) + 1
    if ATTEMPTS[endpoint] <= fail_times:
        raise RateLimited(f"{endpoint}: 429 Too Many Requests")
    return {"endpoint": endpoint, "attempts": ATTEMPTS[endpoint]}


@flow(retries=1, retry_delay_seconds=0)
def sync_accounts(fail_times: int = 2) -> list[dict[str, object]]:
    ATTEMPTS.clear()
    logger = get_run_logger()
    results = [call_api("/accounts", fail_times), call_api("/invoices", 0)]
    logger.info("Synced after %s attempts", [r["attempts"] for r in results])
    return results


if __name__ == "__main__":
    sync_accounts()
