"""Downstream steps that must run even when a check fails, and one that must not."""

from flowyard import allow_failure, flow, task
from flowyard.states import StateType


@task
def load_rows() -> list[dict[str, object]]:
    return [{"id": 1, "email": "a@example.com"}, {"id": 2, "email": None}]


@task
def check_emails(rows: list[dict[str, object]]) -> int:
    missing = sum(1 for row in rows if not row["email"])
    if missing:
        raise ValueError(f"{missing} row(s) without email")
    return len(rows)


@task
def publish(rows: list[dict[str, object]], checked: int) -> str:
    return f"published {checked}"


@task
def write_quality_report(check: object) -> str:
    return f"report: {check}"


@flow
def quality_gate() -> dict[str, object]:
    rows = load_rows.submit()
    checked = check_emails.submit(rows)
    published = publish.submit(rows, checked)
    report = write_quality_report.submit(allow_failure(checked))
    published.wait()
    return {
        "report": report.result(),
        "publish_state": published.state.name,
        "publish_type": published.state.type == StateType.PENDING,
        "check_state": checked.state.name,
    }


if __name__ == "__main__":
    print(quality_gate())
