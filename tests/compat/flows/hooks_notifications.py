"""State hooks that notify on completion and failure."""

from flowyard import flow, task

NOTIFICATIONS: list[str] = []


def notify_success(flow, flow_run, state):  # type: ignore[no-untyped-def]
    NOTIFICATIONS.append(f"{flow.name} {state.name}")


def notify_failure(flow, flow_run, state):  # type: ignore[no-untyped-def]
    NOTIFICATIONS.append(f"{flow.name} {state.name}: {state.message}")


def task_failed(task, task_run, state):  # type: ignore[no-untyped-def]
    NOTIFICATIONS.append(f"task {task.name} {state.name}")


@task(on_failure=[task_failed])
def check_balance(account: str, balance: float) -> float:
    if balance < 0:
        raise ValueError(f"{account} is overdrawn")
    return balance


@flow(on_completion=[notify_success], on_failure=[notify_failure])
def nightly_audit(balances: dict[str, float]) -> float:
    return sum(check_balance(account, value) for account, value in balances.items())


def run_both() -> list[str]:
    NOTIFICATIONS.clear()
    nightly_audit({"a": 10.0, "b": 5.5})
    state = nightly_audit({"a": 1.0, "c": -3.0}, return_state=True)
    assert state.is_failed()
    return list(NOTIFICATIONS)


if __name__ == "__main__":
    print(run_both())
