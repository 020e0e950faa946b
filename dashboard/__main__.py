"""``python -m dashboard``: serve the dashboard; ``openapi``: write its OpenAPI document;
``grant``: create its own Kafka principal (as the admin principal, password on stdin)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from dashboard.settings import DashboardSettings

cli = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False)
OPENAPI = Path(__file__).resolve().parent / "openapi.json"


def openapi_document() -> str:
    """The read API's OpenAPI document as checked in (sorted keys, two-space indent)."""
    from dashboard.app import create_app
    from streams.settings import Settings

    app = create_app(Settings(), DashboardSettings())
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


@cli.command()
def serve() -> None:
    """Serve the dashboard (METRICLOOM_DASHBOARD_HOST/_PORT) until SIGTERM."""
    import uvicorn

    from dashboard.app import create_app
    from streams.logging import configure_logging
    from streams.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    dash = DashboardSettings()
    if not (dash.web_dir / "index.html").exists():
        typer.echo(
            f"error: no built web app in {dash.web_dir} (npm run build in dashboard/web)", err=True
        )
        raise typer.Exit(2)
    typer.echo(
        f"dashboard on http://{dash.host}:{dash.port}/ (Kafka {settings.kafka_bootstrap},"
        f" database {settings.database_location})",
        err=True,
    )
    uvicorn.run(create_app(settings, dash), host=dash.host, port=dash.port, log_level="warning")


@cli.command()
def openapi(
    check: Annotated[bool, typer.Option(help="Exit 1 if the checked-in file differs.")] = False,
) -> None:
    """Write dashboard/openapi.json from the app (or, with --check, compare)."""
    document = openapi_document()
    if check:
        if OPENAPI.read_text() != document:
            typer.echo(f"{OPENAPI} is out of date: python -m dashboard openapi", err=True)
            raise typer.Exit(1)
        return
    OPENAPI.write_text(document)


@cli.command()
def grant() -> None:
    """Create or update the `dashboard` principal with its one ACL (read dead-letter);
    its password is read from stdin. Run as the admin principal."""
    from dashboard.principal import grant_dashboard
    from streams.settings import get_settings

    password = sys.stdin.readline().strip()
    if not password:
        typer.echo("error: give the dashboard principal's password on stdin", err=True)
        raise typer.Exit(2)
    grant_dashboard(get_settings(), password)


if __name__ == "__main__":
    cli()
