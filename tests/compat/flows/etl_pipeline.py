"""Extract, transform, load: plain tasks with retries and a typed flow parameter."""

from __future__ import annotations

import json
from pathlib import Path

from flowyard import flow, task
from flowyard.logging import get_run_logger

RAW = [
    {"id": 1, "city": "Oslo", "temp_c": "4.5"},
    {"id": 2, "city": "Lima", "temp_c": "19.0"},
    {"id": 3, "city": "Cairo", "temp_c": None},
    {"id": 4, "city": "Perth", "temp_c": "23.25"},
]


@task(retries=2, retry_delay_seconds=0)
def extract() -> list[dict[str, object]]:
    return [dict(row) for row in RAW]


@task
def transform(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    cleaned = []
    for row in rows:
        if row["temp_c"] is None:
            continue
        celsius = float(str(row["temp_c"]))
        cleaned.append(
            {"id": row["id"], "city": row["city"], "temp_f": round(celsius * 9 / 5 + 32, 2)}
        )
    return cleaned


@task
def load(rows: list[dict[str, object]], destination: Path) -> int:
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps(rows))
    get_run_logger().info("Wrote %d rows to %s", len(rows), destination)
    return len(rows)


@flow(name="etl-pipeline")
def etl(destination: Path = Path("out/weather.json")) -> int:
    raw = extract()
    cleaned = transform(raw)
    return load(cleaned, destination)


if __name__ == "__main__":
    import tempfile

    etl(Path(tempfile.mkdtemp()) / "weather.json")
