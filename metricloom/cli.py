"""The ``metricloom`` command (Typer): the front door for people and scripts.

Commands that change state (``metric create``, ``dashboard add``, ``metric refresh``,
``metric pause``, ...) go through the commands topic like any other producer's, and print
the worker's CommandResult. Exit status (``metricloom/console.py``): 0 done, 1 a runtime
failure (rejected, no worker answered, a service away), 2 a usage error; every failure is
one line on stderr.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID, uuid5

import typer
from pydantic import ValidationError

from metricloom.apps import (
    app,
    charts_app,
    connection_app,
    dashboard_app,
    dead_letter_app,
    demo_app,
    metric_app,
    tenant_app,
    tokens_app,
    topics_app,
    transformer_app,
)
from metricloom.choices import AggregationChoice, ChartTypeChoice
from metricloom.console import (
    Json,
    Org,
    days_or_all,
    describe,
    fail,
    in_transaction,
    print_json,
    run_command,
)
from schema.exceptions import MetricloomError
from schema.models import ChartType, PollFrequency
from streams.messages import (
    COMMAND_NAMESPACE,
    ChangeChart,
    CommandBase,
    CreateDashboardMetric,
    CreateMetric,
    GenerateTransformer,
    OperatorCommandBase,
    RefreshMetric,
    RegenerateTransformer,
    RollbackTemplateTransformer,
    RollbackTransformer,
)
from streams.settings import Settings, get_settings

if TYPE_CHECKING:
    from schema.db import Conn


def _run_command(
    settings: Settings,
    command: CommandBase | OperatorCommandBase,
    timeout: float,
    as_json: bool = False,
) -> dict[str, Any]:
    return run_command(settings, command, timeout, as_json)


@app.command()
def worker() -> None:
    """Run a worker: every stage's agent and the scheduler, until SIGTERM."""
    from streams.worker import run_worker

    run_worker(get_settings())


@app.command("sandbox-runner")
def sandbox_runner() -> None:
    """Run the sandbox runner: the only process that starts sandbox containers. It serves
    one operation on its Unix socket (METRICLOOM_SANDBOX__RUNNER_SOCKET) and reads only
    the sandbox's settings."""
    from sandbox.runner import RunnerSettings, run_runner
    from streams.logging import configure_logging

    settings = RunnerSettings()
    configure_logging(settings.log_level)
    run_runner(settings)


@app.command()
def migrate() -> None:
    """Apply the database migrations (safe to run again) and the retention and
    compression policies the settings ask for; with METRICLOOM_DATABASE_ADMIN_URL, as that
    user, and then make METRICLOOM_DATABASE_URL's user the rows-only application role."""
    from schema.db import Database
    from schema.migrate import apply_migrations
    from schema.policies import apply_policies
    from schema.roles import grant_application_role

    settings = get_settings()
    app_url = settings.database_url.get_secret_value()
    admin = settings.database_admin_url
    url = admin.get_secret_value() if admin is not None else app_url

    async def policies() -> list[str]:
        db = Database(url, max_size=1)
        try:
            async with db.transaction() as conn:
                return await apply_policies(
                    conn, settings.retention_days, settings.compress_after_days
                )
        finally:
            await db.close()

    try:
        applied = apply_migrations(url)
        done = asyncio.run(policies())
        role = grant_application_role(url, app_url) if admin is not None else None
    except MetricloomError as exc:
        fail(str(exc))
    print_json({"applied": applied, "policies": done, "application_role": role})


@app.command()
def setup() -> None:
    """Everything a worker needs before it starts: the migrations, the topics, and (on an
    authenticated cluster, run as its admin principal) the worker principal's ACLs — what
    the local cluster runs once before its first worker, so nothing races a worker's start."""
    from streams.admin import ensure_topics
    from streams.tenants import Tenants

    migrate()
    settings = get_settings()
    try:
        created = asyncio.run(ensure_topics(settings))
        if settings.kafka.username is not None:
            password = settings.kafka.worker_password
            Tenants(settings).grant_worker(password.get_secret_value() if password else None)
    except MetricloomError as exc:
        fail(str(exc))
    print_json({"topics_created": created, "worker": settings.kafka.worker_username})


@tenant_app.command("add")
def tenant_add(
    org: Annotated[str, typer.Argument(help="The organisation id (lower case, a-z 0-9 _ -).")],
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from stdin instead of generating one.")
    ] = False,
) -> None:
    """Create an organisation's principal, its ACLs and its topics; prints its credentials
    once (they are kept nowhere else: the broker stores only a salted hash)."""
    from streams.admin import ensure_tenant_topics
    from streams.tenants import Tenants
    from streams.topics import InvalidOrganizationError, check_organization

    settings = get_settings()
    try:
        check_organization(org)
        given = sys.stdin.readline().strip() if password_stdin else None
        if password_stdin and not given:
            fail("--password-stdin given but stdin held no password", 2)
        password = Tenants(settings).add_tenant(org, given)
        topics = asyncio.run(ensure_tenant_topics(settings, org))
    except InvalidOrganizationError as exc:
        fail(str(exc), 2)
    except MetricloomError as exc:
        fail(str(exc))
    print_json(
        {
            "organization": org,
            "username": org,
            "password": None if given else password,
            "mechanism": "SCRAM-SHA-512",
            "topics_created": topics,
        }
    )


@tenant_app.command("remove")
def tenant_remove(org: Annotated[str, typer.Argument(help="The organisation id.")]) -> None:
    """Revoke an organisation's principal and ACLs (its commands stop at once; its topics
    and data stay until deleted by hand)."""
    from streams.tenants import Tenants

    try:
        Tenants(get_settings()).remove_tenant(org)
    except MetricloomError as exc:
        fail(str(exc))
    print_json({"organization": org, "removed": True})


@tenant_app.command("list")
def tenant_list() -> None:
    """The organisations that have a principal."""
    from streams.tenants import Tenants

    try:
        tenants = Tenants(get_settings()).tenants()
    except MetricloomError as exc:
        fail(str(exc))
    for org in tenants:
        print_json({"organization": org})


@topics_app.command("schemas")
def topics_schemas(
    check: Annotated[
        bool, typer.Option(help="Exit 1 if the checked-in schemas differ from the models.")
    ] = False,
) -> None:
    """Write each topic's JSON Schema (docs/topic-schemas/, from the pydantic models), or
    with --check say which are out of date."""
    from streams.schemas import SCHEMAS_DIR, stale, write

    if check:
        differ = stale()
        if differ:
            fail(f"out of date in {SCHEMAS_DIR}: {', '.join(differ)} (metricloom topics schemas)")
        return
    print_json({"written": write(), "directory": str(SCHEMAS_DIR)})


@topics_app.command("create")
def topics_create() -> None:
    """Create the missing topics with their configuration."""
    from streams.admin import ensure_topics

    print_json({"created": asyncio.run(ensure_topics(get_settings()))})


@metric_app.command("create")
def metric_create(
    template: Annotated[str, typer.Argument(help="Template id, e.g. github-repo-stars.")],
    org: Org,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Template parameter NAME=VALUE.")
    ] = None,
    frequency: Annotated[PollFrequency | None, typer.Option(help="Polling tier.")] = None,
    metric_id: Annotated[UUID | None, typer.Option(help="Choose the metric id.")] = None,
    connection: Annotated[UUID | None, typer.Option(help="Connection id (credentials).")] = None,
    follow_backfill: Annotated[
        bool, typer.Option(help="Show the backfill's progress until its points are stored.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the worker.")] = 60.0,
    json: Json = False,
) -> None:
    """Create a metric from a template; its first poll starts at once, and its history
    is backfilled when the template has a historical endpoint."""
    params: dict[str, str] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep:
            fail(f"--param {item!r} is not NAME=VALUE", 2)
        params[name] = value
    command = CreateMetric(
        organization_id=org,
        template_id=template,
        params=params,
        poll_frequency=frequency,
        metric_id=metric_id,
        connection_id=connection,
    )
    settings = get_settings()
    from templates import TemplateError, get_template

    try:
        has_history = get_template(template).historical is not None
    except TemplateError:
        has_history = False
    if not (follow_backfill and has_history):
        _run_command(settings, command, timeout, json)
        return
    asyncio.run(_create_and_follow(settings, command, timeout))


async def _create_and_follow(settings: Settings, command: CreateMetric, wait_s: float) -> None:
    """Send the command while already following backfill-progress, and draw the steps
    (fetched, then written) as a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from streams.client import CommandTimeoutError, follow, send_command

    metric_id = str(command.resolved_metric_id())
    progress = Progress(
        TextColumn("backfill {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    events = follow(settings, "backfill-progress", command.organization_id, from_beginning=True)
    try:
        result = await send_command(settings, command, wait_s)
    except (CommandTimeoutError, MetricloomError) as exc:
        fail(str(exc))
    print_json(result.model_dump(mode="json"))
    if result.status != "accepted":
        raise typer.Exit(1)
    with progress:
        task = progress.add_task("requested", total=None)
        written: set[int | None] = set()
        points = 0
        try:
            async with asyncio.timeout(wait_s * 5):
                async for _, value in events:
                    if not isinstance(value, dict) or value.get("metric_id") != metric_id:
                        continue
                    chunks = value.get("chunks") or 1
                    if value["state"] == "failed":
                        print_json(value)
                        fail(f"backfill failed: {value.get('error')}")
                    if value["state"] == "written" and value.get("chunk") not in written:
                        written.add(value.get("chunk"))
                        points += int(value["points"])
                    description = f"{len(written)}/{chunks} chunks, {points} points stored"
                    progress.update(
                        task, total=chunks, completed=len(written), description=description
                    )
                    if len(written) >= chunks:
                        print_json({"metric_id": metric_id, "chunks": chunks, "points": points})
                        return
        except TimeoutError:
            fail("no backfill progress in time (is a worker running?)")


@connection_app.command("add")
def connection_add(
    org: Org,
    provider: Annotated[str, typer.Option(help="A declared provider (providers/*.json).")],
    token_stdin: Annotated[bool, typer.Option(help="Read a direct API token from stdin.")] = False,
    nango_connection_id: Annotated[str | None, typer.Option(help="Nango connection id.")] = None,
    nango_provider_config_key: Annotated[
        str | None, typer.Option(help="Nango integration key.")
    ] = None,
) -> None:
    """Store how an organisation reaches a provider; prints the connection id to give to
    `metric create --connection`. Written to the database directly: credentials never
    travel on Kafka (and a token is read from stdin, never from the command line)."""
    from uuid import uuid4

    from pydantic import SecretStr

    from agents.services import keyring_for
    from providers import configured_providers
    from schema import catalog
    from schema.models import Connection

    if (nango_connection_id is None) != (nango_provider_config_key is None):
        fail(
            "--nango-connection-id and --nango-provider-config-key go together: give both"
            " (a Nango connection) or neither",
            2,
        )
    if token_stdin and nango_connection_id is not None:
        fail("--token-stdin and the --nango-* options exclude each other: give one way in", 2)
    providers = configured_providers()
    if provider not in providers:
        fail(f"unknown provider {provider!r}: give one of {', '.join(sorted(providers))}", 2)
    token = sys.stdin.readline().strip() if token_stdin else None
    if token_stdin and not token:
        fail("--token-stdin given but stdin held no token")
    auth = "token" if token else "nango" if nango_connection_id else "none"
    try:
        connection = Connection.model_validate(
            {
                "id": uuid4(),
                "organization_id": org,
                "provider": provider,
                "auth": auth,
                "token": SecretStr(token) if token else None,
                "nango_connection_id": nango_connection_id,
                "nango_provider_config_key": nango_provider_config_key,
            },
            context={"providers": providers},
        )
    except ValidationError as exc:
        fail(describe(exc), 2)

    async def save(conn: Conn) -> None:
        await catalog.insert_connection(conn, connection, keyring_for(get_settings()))

    try:
        in_transaction(save)
    except MetricloomError as exc:
        fail(str(exc))
    print_json({"connection_id": str(connection.id), "provider": provider, "auth": auth})


@connection_app.command("rotate")
def connection_rotate(
    connection_id: Annotated[UUID, typer.Argument(help="The connection's id.")],
    org: Org,
    token_stdin: Annotated[
        bool, typer.Option(help="Read the new token from stdin (required).")
    ] = False,
    json: Json = False,
) -> None:
    """Give a token connection a new token (the provider issued a new one, the old one
    leaked); the next poll of its metrics uses it. Written to the database directly and
    read from stdin, like `connection add`: a token never travels on Kafka or argv."""
    from agents.services import keyring_for
    from schema import catalog

    if not token_stdin:
        fail("give the new token on stdin with --token-stdin (never on the command line)", 2)
    token = sys.stdin.readline().strip()
    if not token:
        fail("--token-stdin given but stdin held no token")

    async def rotate(conn: Conn) -> str:
        keyring = keyring_for(get_settings())
        connection = await catalog.replace_token(conn, connection_id, org, token, keyring)
        return connection.provider

    try:
        provider = in_transaction(rotate)
    except MetricloomError as exc:
        fail(str(exc))
    done = {"connection_id": str(connection_id), "provider": provider, "token": "replaced"}
    if json:
        print_json(done)
    else:
        print(f"connection {connection_id} ({provider}): token replaced")


@tokens_app.command("rotate")
def tokens_rotate() -> None:
    """Seal every stored token with the first key of METRICLOOM_TOKEN_KEYS (tokens sealed
    with an older key of the list, or stored before encryption, are sealed again); then
    the older keys can be dropped from the setting. Safe to run again."""
    from agents.services import keyring_for
    from schema import catalog

    settings = get_settings()
    try:
        keyring = keyring_for(settings)
    except MetricloomError as exc:
        fail(str(exc))
    if keyring is None:
        fail("METRICLOOM_TOKEN_KEYS is not set: nothing to seal the tokens with")

    async def reseal(conn: Conn) -> dict[str, int]:
        return await catalog.reseal_tokens(conn, keyring)

    try:
        counts = in_transaction(reseal)
    except MetricloomError as exc:
        fail(str(exc))
    print_json({"key": keyring.current, **counts})


@metric_app.command("refresh")
def metric_refresh(
    metric_id: UUID, org: Org, timeout: Annotated[float, typer.Option()] = 60.0, json: Json = False
) -> None:
    """Poll a metric now, whatever its schedule."""
    command = RefreshMetric(organization_id=org, metric_id=metric_id)
    _run_command(get_settings(), command, timeout, json)


@dashboard_app.command("add")
def dashboard_add(
    metric_id: UUID,
    org: Org,
    dashboard: Annotated[str, typer.Option(help="Dashboard id.")],
    chart_type: Annotated[ChartTypeChoice | None, typer.Option(help="The chart's type.")] = None,
    days: Annotated[
        str,
        typer.Option(
            help="Date range in days, 1 to 3660, or all (all time).", callback=days_or_all
        ),
    ] = "30",
    aggregation: Annotated[
        AggregationChoice, typer.Option(help="How points are aggregated.")
    ] = AggregationChoice.LAST,
    title: Annotated[str | None, typer.Option()] = None,
    timeout: Annotated[float, typer.Option()] = 60.0,
    json: Json = False,
) -> None:
    """Place a metric on a dashboard; its chart config follows on chart-configs."""
    command = CreateDashboardMetric.model_validate(
        {
            "organization_id": org,
            "dashboard_id": dashboard,
            "metric_id": metric_id,
            "chart_type": chart_type,
            "date_range_days": days,
            "aggregation": aggregation,
            "title": title,
        }
    )
    _run_command(get_settings(), command, timeout, json)


@dashboard_app.command("change")
def dashboard_change(
    dashboard_metric_id: UUID,
    org: Org,
    request: Annotated[str, typer.Option(help='In plain words, e.g. "weekly averages as bars".')],
    timeout: Annotated[float, typer.Option()] = 60.0,
    json: Json = False,
) -> None:
    """Change a chart in plain words; the new chart follows on chart-configs."""
    command = ChangeChart(
        organization_id=org, dashboard_metric_id=dashboard_metric_id, request=request
    )
    _run_command(get_settings(), command, timeout, json)


@transformer_app.command("rollback")
def transformer_rollback(
    version: Annotated[int, typer.Option(help="The version to make current again.")],
    template: Annotated[
        str | None, typer.Option(help="A template's shared transformer (operator).")
    ] = None,
    dashboard_metric: Annotated[UUID | None, typer.Option(help="A chart's transformer.")] = None,
    org: Annotated[str | None, typer.Option("--org", help="The chart's organisation.")] = None,
    timeout: Annotated[float, typer.Option()] = 60.0,
    json: Json = False,
) -> None:
    """Make an earlier transformer version current again (kept as a new version): a
    chart's (with --org), or a template's (an operator command, for every organisation)."""
    command: CommandBase | OperatorCommandBase
    if (template is None) == (dashboard_metric is None):
        fail("name exactly one of --template and --dashboard-metric", 2)
    if template is not None:
        command = RollbackTemplateTransformer(template_id=template, version=version)
    else:
        if not org:
            fail("--dashboard-metric needs --org", 2)
        command = RollbackTransformer(
            organization_id=org or "", dashboard_metric_id=dashboard_metric, version=version
        )
    _run_command(get_settings(), command, timeout, json)


@transformer_app.command("regenerate")
def transformer_regenerate(
    template: Annotated[str, typer.Option(help="The template whose transformer to rewrite.")],
    timeout: Annotated[float, typer.Option()] = 60.0,
    json: Json = False,
) -> None:
    """Write a template's transformer again from a fresh sample (an operator command: the
    way out of `failed`)."""
    _run_command(get_settings(), RegenerateTransformer(template_id=template), timeout, json)


@transformer_app.command("generate")
def transformer_generate(
    template: Annotated[
        str | None, typer.Option(help="The template whose first transformer to write.")
    ] = None,
    all_templates: Annotated[
        bool, typer.Option("--all", help="Every configured template (design phase 6).")
    ] = False,
    timeout: Annotated[float, typer.Option()] = 60.0,
    json: Json = False,
) -> None:
    """Write templates' first transformers now, each from a real sample of one of its
    metrics (an operator command): after `metric import`, or when a first generation gave
    up. A template with a transformer is left as it is; one with no metric is reported.
    The transformers follow on the codegen stage (`metricloom template list`)."""
    from streams.client import CommandTimeoutError, send_commands
    from templates import configured_templates

    if (template is None) == (not all_templates):
        fail("name exactly one of --template and --all", 2)
    if template is not None:
        _run_command(get_settings(), GenerateTransformer(template_id=template), timeout, json)
        return
    commands = [GenerateTransformer(template_id=t) for t in sorted(configured_templates())]
    try:
        results = asyncio.run(send_commands(get_settings(), commands, timeout))
    except CommandTimeoutError as exc:
        fail(f"{exc} (is `metricloom worker` running?)")
    except MetricloomError as exc:
        fail(str(exc))
    report = []
    for command in commands:
        result = results[command.command_id]
        if result.status != "accepted":
            state, detail = "not generated", result.error or ""
        elif result.metric_id is None:  # nothing was sent: the note says why
            state, detail = result.note or "nothing to do", ""
        else:
            state, detail = "generating", f"from a sample of metric {result.metric_id}"
        report.append({"template_id": command.template_id, "state": state, "detail": detail})
    if json:
        print_json(report)
        return
    for line in report:
        typer.echo(
            f"{line['template_id']}: {line['state']}"
            + (f" ({line['detail']})" if line["detail"] else "")
        )


@charts_app.command("tail")
def charts_tail(
    org: Org,
    from_beginning: Annotated[bool, typer.Option(help="Start from the oldest record.")] = False,
    since: Annotated[
        datetime | None,
        typer.Option(help="Start from the first config published at or after this time (UTC)."),
    ] = None,
    count: Annotated[int, typer.Option(help="Stop after this many (0: never).")] = 0,
    charts: Annotated[
        int, typer.Option(help="Stop once this many different charts have been printed.")
    ] = 0,
    timeout: Annotated[float, typer.Option(help="Stop after this many seconds (0: never).")] = 0,
) -> None:
    """Print an organisation's chart configs as they are published, one JSON object per
    line (from its ``chart-configs.<org>`` topic). A chart redrawn is printed again;
    ``--charts`` counts different charts (dashboard metrics), ``--count`` records."""
    from streams.client import follow

    seen = 0
    keys: set[str] = set()

    async def run() -> None:
        nonlocal seen
        async for key, value in follow(get_settings(), "chart-configs", org, from_beginning, since):
            print_json({"key": key, "value": value})
            seen += 1
            keys.add(str(key))
            if (count and seen >= count) or (charts and len(keys) >= charts):
                return

    try:
        asyncio.run(asyncio.wait_for(run(), timeout or None))
    except TimeoutError:
        if count:  # asked for a number of configs and did not get them: say so
            fail(f"{seen} of {count} chart configs within {timeout} s", 1)
        if charts:
            fail(f"{len(keys)} of {charts} charts within {timeout} s", 1)
    except MetricloomError as exc:
        fail(str(exc))


@app.command("demo-api")
def demo_api(
    host: str = "127.0.0.1",
    port: int = 8080,
    rate_limit: Annotated[
        int, typer.Option(help="GitHub requests per credential per hour.")
    ] = 5000,
) -> None:
    """Serve the demo API (GitHub, YouTube, PostHog, Sheets shapes) for offline runs."""
    import errno

    from demo_api.server import serve

    def announce(_: str) -> None:
        typer.echo(
            f"demo-api: listening on http://{host}:{port} (GitHub, YouTube, PostHog and Sheets"
            f" shapes; {rate_limit} GitHub requests per credential per hour); connects to nothing",
            err=True,
        )

    try:
        serve(host, port, rate_limit, announce)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"{host}:{port} is already in use: stop what listens there or pick --port")
        fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}")


DEMO: list[tuple[str, dict[str, str], ChartType, int, str]] = [
    ("github-repo-stars", {"OWNER": "metricloom", "REPO": "metricloom"}, "line", 30, "last"),
    ("github-repo-stars", {"OWNER": "octocat", "REPO": "hello-world"}, "area", 30, "last"),
    ("github-repo-stars", {"OWNER": "apache", "REPO": "kafka"}, "kpi", 30, "last"),
    # a template with history: its first chart already shows 90 backfilled days
    ("posthog-events", {"PROJECT_ID": "1"}, "bar", 90, "sum"),
]
"""The demo metrics: (template, parameters, chart type, days shown, aggregation)."""


@demo_app.command("seed")
def demo_seed(
    org: Annotated[str, typer.Option("--org")] = "demo",
    timeout: Annotated[float, typer.Option()] = 120.0,
    json: Json = False,
) -> None:
    """Register the demo metrics and their dashboard charts (idempotent), and poll each
    once now, so a fresh chart config follows even when they were registered before."""
    settings = get_settings()
    for template, params, chart, days, aggregation in DEMO:
        name = f"demo:{org}:{template}:" + "/".join(params.values())
        create = CreateMetric(
            command_id=uuid5(COMMAND_NAMESPACE, name),
            organization_id=org,
            template_id=template,
            params=params,
        )
        doc = _run_command(settings, create, timeout, json)
        place = CreateDashboardMetric(
            command_id=uuid5(COMMAND_NAMESPACE, f"{name}:chart"),
            organization_id=org,
            dashboard_id="demo",
            metric_id=UUID(doc["metric_id"]),
            chart_type=chart,
            date_range_days=days,
            aggregation=aggregation,
        )
        _run_command(settings, place, timeout, json)
        _run_command(
            settings,
            RefreshMetric(organization_id=org, metric_id=place.metric_id),
            timeout,
            json,
        )


def _dead_letters(
    stage: str | None,
    error_type: str | None,
    org: str | None,
    since: datetime | None,
    ids: list[str] | None = None,
) -> list[Any]:
    from streams.dead_letters import Filter, read

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    wanted = Filter(stage, error_type, org, since, frozenset(ids or []))

    async def collect() -> list[Any]:
        return [letter async for letter in read(get_settings(), wanted)]

    try:
        return asyncio.run(collect())
    except MetricloomError as exc:
        fail(str(exc))
    return []


StageOption = Annotated[str | None, typer.Option(help="Only this stage's (fetch, transform, ...).")]
ErrorTypeOption = Annotated[str | None, typer.Option(help="Only this error type.")]
OrgOption = Annotated[str | None, typer.Option("--org", help="Only this organisation's.")]
SinceOption = Annotated[
    datetime | None, typer.Option(help="Only those failed at or after this time (UTC).")
]


@dead_letter_app.command("list")
def dead_letter_list(
    stage: StageOption = None,
    error_type: ErrorTypeOption = None,
    org: OrgOption = None,
    since: SinceOption = None,
) -> None:
    """One line per dead letter (JSON): id, when, stage, topic, error, metric."""
    for letter in _dead_letters(stage, error_type, org, since):
        print_json(
            {
                "id": str(letter.id),
                "failed_at": letter.failed_at.isoformat(),
                "stage": letter.stage,
                "topic": letter.topic,
                "error_type": letter.error_type,
                "error": letter.error[:200],
                "metric_id": str(letter.metric_id) if letter.metric_id else None,
                "organization_id": letter.organization_id,
                "replayable": not letter.truncated,
            }
        )


@dead_letter_app.command("show")
def dead_letter_show(
    dead_letter_id: Annotated[str, typer.Argument(help="A dead letter's id (or its first 8).")],
) -> None:
    """A dead letter whole, its original included."""
    found = _dead_letters(None, None, None, None, [dead_letter_id])
    if not found:
        fail(f"no dead letter {dead_letter_id} on the topic (it keeps 30 days)")
    print_json(found[-1].model_dump(mode="json"))


@dead_letter_app.command("replay")
def dead_letter_replay(
    dead_letter_ids: Annotated[
        list[str] | None, typer.Argument(help="Ids to replay (or filter with the options).")
    ] = None,
    stage: StageOption = None,
    error_type: ErrorTypeOption = None,
    org: OrgOption = None,
    since: SinceOption = None,
    force: Annotated[bool, typer.Option(help="Replay even those replayed before.")] = False,
) -> None:
    """Send each original again to its topic (after fixing its cause); each dead letter is
    replayed once unless --force. Prints one line per dead letter with what happened."""
    from streams.dead_letters import replay

    if not dead_letter_ids and not (stage or error_type or org or since):
        fail(
            "name dead letters to replay, or filter them (--stage, --error-type, --org, --since)", 2
        )
    letters = _dead_letters(stage, error_type, org, since, dead_letter_ids)
    try:
        outcomes = asyncio.run(replay(get_settings(), letters, force))
    except MetricloomError as exc:
        fail(str(exc))
    for done in outcomes:
        print_json({"id": str(done.letter.id), "topic": done.letter.topic, "outcome": done.outcome})


from metricloom import imports, manage, reads  # noqa: E402  (their verbs join the apps above)

__all__ = ["app", "imports", "manage", "reads"]

if __name__ == "__main__":
    from metricloom.console import main

    main(app=app)
