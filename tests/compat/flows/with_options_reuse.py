"""Reusing tasks and flows with different options."""

from flowyard import flow, task

CALLS: list[str] = []


@task(retries=0)
def ping(host: str) -> str:
    CALLS.append(host)
    if host.startswith("flaky") and CALLS.count(host) < 2:
        raise ConnectionError(host)
    return f"pong from {host}"


patient_ping = ping.with_options(name="patient-ping", retries=2, retry_delay_seconds=0)


@flow
def health_check(hosts: list[str]) -> list[str]:
    CALLS.clear()
    return [patient_ping(host) for host in hosts]


strict_check = health_check.with_options(name="strict-health-check")


if __name__ == "__main__":
    print(health_check(["db", "flaky-cache"]))
