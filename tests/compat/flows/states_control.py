"""Returning states by hand and inspecting the states of tasks."""

from flowyard import flow, task
from flowyard.states import Completed, Failed


@task
def validate(record: dict[str, object]) -> dict[str, object]:
    if "id" not in record:
        raise KeyError("id")
    return record


@flow
def validate_batch(records: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    states = [validate(r, return_state=True) for r in records]
    failed = [s for s in states if s.is_failed()]
    if len(failed) > len(states) // 2:
        return Failed(message=f"{len(failed)}/{len(states)} records invalid")
    return Completed(
        message=f"{len(failed)} invalid record(s) skipped", data=len(states) - len(failed)
    )


def outcomes() -> dict[str, object]:
    good = validate_batch([{"id": 1}, {"id": 2}, {"x": 3}], return_state=True)
    bad = validate_batch([{"x": 1}, {"x": 2}, {"id": 3}], return_state=True)
    return {
        "good": (good.name, good.message, good.result()),
        "bad": (bad.name, bad.message),
    }


if __name__ == "__main__":
    print(outcomes())
