"""The Prefect quickstart: a flow, a task, the run logger and printed output."""

from flowyard import flow, get_run_logger, task


@task
def say_hello(name: str) -> str:
    greeting = f"Hello, {name}!"
    print(greeting)
    return greeting


@flow(log_prints=True)
def hello_world(names: list[str] = ["Marvin", "Arthur"]) -> list[str]:  # noqa: B006
    logger = get_run_logger()
    logger.info("Greeting %d people", len(names))
    return [say_hello(name) for name in names]


if __name__ == "__main__":
    hello_world()
