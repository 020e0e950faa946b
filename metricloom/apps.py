"""The ``metricloom`` command's Typer apps: the command and its groups, in one place so the
modules that add verbs to them (``cli``, ``manage``, ``reads``) share them."""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="metricloom: metrics pipeline on Kafka and TimescaleDB.",
)
metric_app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, help="Create and refresh metrics."
)
dashboard_app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, help="Place metrics on dashboards."
)
charts_app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, help="Follow the published chart configs."
)
topics_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, help="Kafka topics.")
demo_app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, help="The offline demo."
)
connection_app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, help="Provider credentials."
)
transformer_app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, help="Transformer versions."
)
app.add_typer(metric_app, name="metric")
app.add_typer(connection_app, name="connection")
app.add_typer(dashboard_app, name="dashboard")
app.add_typer(charts_app, name="charts")
app.add_typer(topics_app, name="topics")
app.add_typer(demo_app, name="demo")
app.add_typer(transformer_app, name="transformer")
tenant_app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Organisations as Kafka principals: add, remove, list (run as the admin principal).",
)
app.add_typer(tenant_app, name="tenant")
dead_letter_app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Messages a stage could not process: list, show, replay.",
)
app.add_typer(dead_letter_app, name="dead-letter")
tokens_app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Provider tokens stored in the database (encrypted at rest).",
)
app.add_typer(tokens_app, name="tokens")
