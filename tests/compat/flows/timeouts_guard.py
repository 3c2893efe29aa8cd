"""A slow step guarded by a timeout; the report still runs with allow_failure."""

import time

from flowyard import allow_failure, flow, task


@task(timeout_seconds=0.2)
def slow_vendor_export(delay: float) -> str:
    time.sleep(delay)
    return "export.csv"


@task
def fast_internal_export() -> str:
    return "internal.csv"


@task
def build_report(vendor: object, internal: str) -> dict[str, object]:
    vendor_ok = isinstance(vendor, str)
    return {"vendor": vendor if vendor_ok else type(vendor).__name__, "internal": internal}


@flow
def daily_exports(vendor_delay: float = 2.0) -> dict[str, object]:
    vendor = slow_vendor_export.submit(vendor_delay)
    internal = fast_internal_export.submit()
    return build_report(allow_failure(vendor), internal)


if __name__ == "__main__":
    print(daily_exports(0.5))
