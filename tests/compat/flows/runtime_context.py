"""Reading the run context: flow_run and task_run facts, tags."""

from flowyard import flow, tags, task
from flowyard.runtime import deployment, flow_run, task_run


@task(task_run_name="describe-{item}")
def describe(item: str) -> dict[str, object]:
    return {"task_run": task_run.name, "task_params": task_run.parameters, "tags": task_run.tags}


@flow(flow_run_name="inventory-{warehouse}")
def inventory(warehouse: str, items: list[str]) -> dict[str, object]:
    with tags("inventory"):
        described = [describe(item) for item in items]
    return {
        "flow_run": flow_run.name,
        "flow_name": flow_run.flow_name,
        "parameters": flow_run.parameters,
        "deployment": deployment.name,
        "described": described,
    }


def tagged() -> dict[str, object]:
    with tags("nightly"):
        return inventory("north", ["bolts"])


if __name__ == "__main__":
    print(tagged())
