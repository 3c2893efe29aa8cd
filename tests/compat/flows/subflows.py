"""A parent flow calling child flows with their own parameters."""

from flowyard import flow, task
from flowyard.runtime import flow_run


@task
def square(x: int) -> int:
    return x * x


@flow
def sum_of_squares(numbers: list[int]) -> int:
    return sum(square(n) for n in numbers)


@flow
def child_names() -> str | None:
    return flow_run.name


@flow(flow_run_name="report-{label}")
def report(label: str, batches: list[list[int]]) -> dict[str, object]:
    totals = [sum_of_squares(batch) for batch in batches]
    return {"label": label, "totals": totals, "grand_total": sum(totals), "parent": flow_run.name}


if __name__ == "__main__":
    print(report("weekly", [[1, 2], [3, 4]]))
