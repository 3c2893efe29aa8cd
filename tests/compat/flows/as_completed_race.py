"""Processing results as they arrive with as_completed."""

import time

from flowyard import flow, task
from flowyard.futures import as_completed


@task
def query_replica(name: str, latency: float) -> str:
    time.sleep(latency)
    return name


@flow
def fastest_replicas(latencies: dict[str, float]) -> list[str]:
    futures = [query_replica.submit(name, latency) for name, latency in latencies.items()]
    return [future.result() for future in as_completed(futures)]


if __name__ == "__main__":
    print(fastest_replicas({"eu": 0.2, "us": 0.0, "ap": 0.1}))
