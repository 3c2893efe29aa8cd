"""Run loggers at several levels, from flows and tasks, with printed output."""

import logging

from flowyard import flow, get_run_logger, task


@task(log_prints=True)
def step(n: int) -> int:
    logger = get_run_logger()
    logger.debug("debug %d", n)
    logger.info("info %d", n)
    print(f"printed {n}")
    if n % 2:
        logger.warning("odd number %d", n)
    return n


@flow
def chatty(count: int = 3) -> int:
    logger = get_run_logger()
    logger.log(logging.INFO, "starting %d steps", count)
    total = sum(step(i) for i in range(count))
    logger.error("total is %d (not an error, just loud)", total)
    return total


if __name__ == "__main__":
    chatty()
