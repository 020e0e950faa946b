"""Open-Meteo's forecast API shape (``GET /v1/forecast``): hourly values as parallel
arrays (``hourly.time`` beside ``hourly.temperature_2m``…), times in local time without a
zone, and the offset beside them (``utc_offset_seconds``), as the real API answers with
``timezone=auto``. The demo's zone is the longitude's (15° an hour)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from demo_api.evolving import gauge

UNITS = {"temperature_2m": "°C", "precipitation": "mm", "wind_speed_10m": "km/h"}


def forecast(
    latitude: float,
    longitude: float,
    variables: list[str],
    past_days: int,
    forecast_days: int,
    now: datetime,
) -> dict[str, Any]:
    offset = timedelta(hours=max(-12, min(14, round(longitude / 15))))
    local_now = now.astimezone(timezone(offset))
    first = local_now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=past_days)
    hours = [first + timedelta(hours=n) for n in range(24 * (past_days + forecast_days))]
    place = f"{latitude:.2f},{longitude:.2f}"
    hourly: dict[str, list[Any]] = {"time": [t.strftime("%Y-%m-%dT%H:%M") for t in hours]}
    for name in variables:
        base = {"temperature_2m": 10.0, "precipitation": 0.6, "wind_speed_10m": 12.0}.get(name, 1.0)
        hourly[name] = [
            round(gauge(f"{place}:{name}", t.astimezone(UTC), base, 0.5), 1) for t in hours
        ]
    hours_offset = int(offset.total_seconds() // 3600)
    zone = "GMT" if hours_offset == 0 else f"GMT{hours_offset:+d}"
    return {
        "latitude": round(latitude, 4),
        "longitude": round(longitude, 4),
        "generationtime_ms": 0.0421,
        "utc_offset_seconds": int(offset.total_seconds()),
        "timezone": zone,
        "timezone_abbreviation": zone,
        "elevation": 38.0,
        "hourly_units": {"time": "iso8601", **{v: UNITS.get(v, "") for v in variables}},
        "hourly": hourly,
    }
