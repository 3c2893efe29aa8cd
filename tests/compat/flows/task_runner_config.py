"""Choosing the task runner and its size."""

import threading
import time

from flowyard import flow, task
from flowyard.task_runners import ConcurrentTaskRunner, ThreadPoolTaskRunner

ACTIVE = 0
PEAK = 0
LOCK = threading.Lock()


@task
def resize_image(name: str) -> str:
    global ACTIVE, PEAK
    with LOCK:
        ACTIVE += 1
        PEAK = max(PEAK, ACTIVE)
    time.sleep(0.02)
    with LOCK:
        ACTIVE -= 1
    return name.replace(".png", "_small.png")


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
def resize_all(images: list[str]) -> dict[str, object]:
    global PEAK
    PEAK = 0
    resized = resize_image.map(images).result()
    return {"resized": resized, "peak_concurrency": PEAK}


@flow(task_runner=ConcurrentTaskRunner())
def resize_one(image: str) -> str:
    return resize_image.submit(image).result()


if __name__ == "__main__":
    print(resize_all([f"img{i}.png" for i in range(6)]), resize_one("x.png"))
