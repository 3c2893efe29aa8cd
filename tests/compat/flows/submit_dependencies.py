"""Submitted tasks wired together by futures and wait_for."""

import time

from flowyard import flow, task
from flowyard.futures import wait

EVENTS: list[str] = []


@task
def create_table(name: str) -> str:
    time.sleep(0.01)
    EVENTS.append(f"create {name}")
    return name


@task
def insert_rows(table: str, rows: int) -> int:
    EVENTS.append(f"insert {table}")
    return rows


@task
def build_index(table: str) -> str:
    EVENTS.append(f"index {table}")
    return f"{table}_idx"


@task
def announce() -> str:
    EVENTS.append("announce")
    return "ready"


@flow
def build_warehouse(tables: list[str]) -> dict[str, object]:
    EVENTS.clear()
    created = [create_table.submit(t) for t in tables]
    inserted = [insert_rows.submit(c, 10) for c in created]
    indexes = [build_index.submit(c, wait_for=[i]) for c, i in zip(created, inserted, strict=True)]
    done = wait(indexes)
    message = announce.submit(wait_for=indexes).result()
    return {
        "rows": sum(f.result() for f in inserted),
        "indexes": sorted(f.result() for f in done.done),
        "message": message,
        "announce_last": EVENTS[-1] == "announce",
    }


if __name__ == "__main__":
    print(build_warehouse(["users", "orders"]))
