"""Google Sheets API v4 shape (``GET /spreadsheets/{id}/values/{range}``): rows of
strings, the header first, numbers formatted as a person typed them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from demo_api.evolving import gauge


def values(spreadsheet_id: str, cell_range: str, now: datetime) -> dict[str, Any]:
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows: list[list[str]] = [["Date", "Revenue", "Region"]]
    for n in range(29, -1, -1):
        day = today - timedelta(days=n)
        amount = gauge(f"sheet:{spreadsheet_id}:{day.date()}", day, base=1500)
        rows.append([day.strftime("%Y-%m-%d"), f"{amount:,.2f}", "EMEA" if n % 2 else "AMER"])
    sheet = cell_range.split("!")[0] if "!" in cell_range else "Sheet1"
    return {"range": f"{sheet}!A1:C{len(rows)}", "majorDimension": "ROWS", "values": rows}
