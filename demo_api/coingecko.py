"""CoinGecko's API shapes: ``/simple/price`` (an object keyed by coin, each keyed by
currency), ``/exchange_rates`` (rows keyed by currency code, the ``usd`` one among many)
and ``/coins/{id}/market_chart`` (``[unix milliseconds, value]`` pairs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from demo_api.evolving import gauge

USD = {"bitcoin": 67000.0, "ethereum": 3500.0, "solana": 150.0}
FIAT = {
    "usd": ("US Dollar", "$", 1.0),
    "eur": ("Euro", "€", 0.92),
    "gbp": ("British Pound", "£", 0.79),
}


def price_usd(coin: str, at: datetime) -> float:
    return gauge(f"coingecko:{coin}", at, USD.get(coin, 10.0), 0.1)


def simple_price(ids: list[str], currencies: list[str], now: datetime) -> dict[str, Any]:
    updated = int(now.timestamp()) // 60 * 60
    answer: dict[str, Any] = {}
    for coin in ids:
        if coin not in USD:
            continue
        usd = price_usd(coin, now)
        entry: dict[str, Any] = {c: round(usd * FIAT[c][2], 2) for c in currencies if c in FIAT}
        entry["last_updated_at"] = updated
        answer[coin] = entry
    return answer


def exchange_rates(now: datetime) -> dict[str, Any]:
    """Rates against one bitcoin, keyed by currency code (crypto first, as CoinGecko's)."""
    btc_usd = price_usd("bitcoin", now)
    rates: dict[str, Any] = {
        "btc": {"name": "Bitcoin", "unit": "BTC", "value": 1.0, "type": "crypto"},
        "eth": {
            "name": "Ether",
            "unit": "ETH",
            "value": round(btc_usd / price_usd("ethereum", now), 3),
            "type": "crypto",
        },
    }
    for code, (name, unit, per_usd) in FIAT.items():
        rates[code] = {
            "name": name,
            "unit": unit,
            "value": round(btc_usd * per_usd, 3),
            "type": "fiat",
        }
    return {"rates": rates}


def market_chart(coin: str, currency: str, days: int, now: datetime) -> dict[str, Any]:
    """Five-minute points for a day, hourly up to 90 days, daily beyond (as CoinGecko's
    automatic granularity), oldest first, each ``[unix ms, value]``."""
    step = (
        timedelta(minutes=5)
        if days <= 1
        else timedelta(hours=1)
        if days <= 90
        else timedelta(days=1)
    )
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    end -= timedelta(minutes=end.minute % 5)
    count = int(timedelta(days=days) / step)
    times = [end - step * n for n in range(count, -1, -1)]
    rate = FIAT.get(currency, FIAT["usd"])[2]
    prices = [[int(t.timestamp() * 1000), round(price_usd(coin, t) * rate, 2)] for t in times]
    return {
        "prices": prices,
        "market_caps": [[ms, round(p * 19_700_000, 0)] for ms, p in prices],
        "total_volumes": [[ms, round(p * 400_000, 0)] for ms, p in prices],
    }
