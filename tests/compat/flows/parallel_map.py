"""Fan out with .map and unmapped, then fan in."""

from flowyard import flow, task, unmapped


@task
def fetch_price(symbol: str, currency: str) -> float:
    prices = {"AAPL": 190.0, "MSFT": 410.0, "NVDA": 880.0}
    rate = {"USD": 1.0, "EUR": 0.5}[currency]
    return prices[symbol] * rate


@task
def total(prices: list[float]) -> float:
    return round(sum(prices), 2)


@flow
def portfolio_value(symbols: list[str], currency: str = "USD") -> float:
    futures = fetch_price.map(symbols, unmapped(currency))
    return total(futures.result())


if __name__ == "__main__":
    print(portfolio_value(["AAPL", "MSFT", "NVDA"], "EUR"))
