"""Caching an expensive task by its inputs and source, with an expiration."""

import os
from datetime import timedelta
from pathlib import Path

from flowyard import flow, task
from flowyard.cache_policies import INPUTS, TASK_SOURCE


def _count_call(marker: str) -> None:
    counter = os.environ.get("COMPAT_CALL_COUNTER")
    if counter:
        with Path(counter).open("a") as fh:
            fh.write(marker + "\n")


@task(cache_policy=INPUTS + TASK_SOURCE, cache_expiration=timedelta(hours=1))
def train_model(dataset: str, epochs: int) -> dict[str, object]:
    _count_call(f"train {dataset} {epochs}")
    return {"dataset": dataset, "epochs": epochs, "accuracy": round(0.5 + epochs / 100, 2)}


@task(cache_policy=INPUTS - "debug")
def summarize(model: dict[str, object], debug: bool = False) -> str:
    _count_call("summarize")
    return f"{model['dataset']}: {model['accuracy']}"


@flow
def training_pipeline(dataset: str = "iris", epochs: int = 10) -> str:
    model = train_model(dataset, epochs)
    return summarize(model, debug=True)


if __name__ == "__main__":
    print(training_pipeline())
