"""What the ``metricloom`` command prints, and how it fails: one line a person can read.

Exit status: 0 done; 1 a runtime failure (a command the worker rejected, no worker
answered, Kafka or the database away, an id the organisation does not have); 2 a usage
error (an unknown option, a value outside its choices or range, a malformed argument).
Every failure is ONE line on stderr, ``error: ...``, never a traceback (``METRICLOOM_DEBUG=1``
lets an unexpected exception's traceback through, to report a bug).

Click (under Typer) would print a boxed, multi-line usage error; :func:`main` runs the
command with ``standalone_mode=False`` and prints each error itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from schema.exceptions import MetricloomError
from streams.messages import CommandBase, OperatorCommandBase
from streams.settings import Settings

if TYPE_CHECKING:
    from schema.db import Conn

T = TypeVar("T")

SERVICES = frozenset({"worker", "sandbox-runner", "demo-api"})
"""The long-running commands: they log (and configure their logging) themselves."""
USAGE = 2
"""Exit status of a usage error."""
FAILED = 1
"""Exit status of a runtime failure."""


def is_organization_id(value: str) -> bool:
    """Whether ``value`` can name an organisation (its topics and its principal)."""
    from streams.topics import ORGANIZATION_ID, RESERVED_PRINCIPALS

    return bool(ORGANIZATION_ID.match(value)) and value not in RESERVED_PRINCIPALS


def _organization(value: str | None) -> str | None:
    from streams.topics import RESERVED_PRINCIPALS

    if value is not None and not is_organization_id(value):
        raise typer.BadParameter(
            f"{value!r} is not an organisation id: 1-63 of a-z 0-9 _ - starting with a"
            f" letter or digit, not {', '.join(sorted(RESERVED_PRINCIPALS))}"
        )
    return value


def within(low: int, high: int) -> Callable[[int], int]:
    """An option callback refusing a number outside [low, high], naming the range."""

    def check(value: int) -> int:
        if not low <= value <= high:
            raise typer.BadParameter(f"{value} is out of range: give {low} to {high}")
        return value

    return check


def days_or_all(value: str) -> int | str:
    """A chart's range option: days, 1 to 3660, or ``all`` (all time)."""
    if value.strip().lower() == "all":
        return "all"
    try:
        days = int(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a number of days: give 1 to 3660, or all"
        ) from None
    return within(1, 3660)(days)


Org = Annotated[
    str,
    typer.Option("--org", help="The organisation (its id).", callback=_organization),
]
OptionalOrg = Annotated[
    str | None,
    typer.Option("--org", help="The organisation of lines that name none.", callback=_organization),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(str(text).split())


def in_transaction(work: Callable[[Conn], Awaitable[T]]) -> T:
    """Run ``work`` in one short transaction as the application role (one connection, no
    pool: a CLI process does one thing): the read verbs, and what the CLI writes straight
    to the database (connections and tokens, which never travel on Kafka)."""
    from schema.db import one_transaction
    from streams.settings import get_settings

    url = get_settings().database_url.get_secret_value()

    async def run() -> T:
        async with one_transaction(url) as conn:
            return await work(conn)

    return asyncio.run(run())


def fail(message: str, code: int = FAILED) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``code``."""
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code)


def print_json(doc: Any) -> None:
    """One JSON document on one line of stdout."""
    sys.stdout.write(json.dumps(doc, default=str) + "\n")
    sys.stdout.flush()


def jsonable(value: Any) -> Any:
    """Models and lists of models as plain JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":"))
    return one_line(str(value))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str = "(none)") -> str:
    """Rows as a plain, aligned text table with a header (cells on one line each)."""
    if not rows:
        return empty
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def show(doc: Any, as_json: bool, text: str) -> None:
    """Print ``doc`` as one JSON document (``--json``) or ``text`` for a person."""
    if as_json:
        print_json(jsonable(doc))
    else:
        typer.echo(text)


def run_command(
    settings: Settings,
    command: CommandBase | OperatorCommandBase,
    timeout: float,
    as_json: bool = True,
) -> dict[str, Any]:
    """Send a command and wait for the worker's answer: printed as JSON (or one readable
    line); a rejection is also one line on stderr, and exits 1."""
    from streams.client import CommandTimeoutError, send_command

    try:
        result = asyncio.run(send_command(settings, command, timeout))
    except CommandTimeoutError as exc:
        fail(f"{exc} (is `metricloom worker` running?)")
    except MetricloomError as exc:
        fail(str(exc))
    doc = result.model_dump(mode="json")
    if as_json:
        print_json(doc)
    elif result.status == "accepted":
        named = [f"{key} {doc[key]}" for key in ("metric_id", "dashboard_metric_id") if doc[key]]
        typer.echo(f"accepted: {result.type} ({', '.join(named) or result.command_id})")
    if result.status != "accepted":
        fail(f"{result.type or 'command'} rejected: {result.error}")
    return doc


def describe(error: ValidationError) -> str:
    """A pydantic error as one line: each problem's field and message."""
    problems = []
    for item in error.errors(include_url=False)[:3]:
        where = ".".join(str(p) for p in item["loc"])
        problems.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
    return "; ".join(problems)


def _undecodable(argv: Sequence[str]) -> str | None:
    """The first argument that is not valid UTF-8 (Python keeps such bytes as lone
    surrogates), shown with the bad bytes escaped."""
    for arg in argv:
        try:
            arg.encode()
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
            return shown
    return None


def main(argv: Sequence[str] | None = None, app: typer.Typer | None = None) -> NoReturn:
    """The ``metricloom`` entry point: the Typer app, with every error as one line and the
    documented exit status."""
    if app is None:
        import metricloom.cli

        app = metricloom.cli.app
    args = list(sys.argv[1:] if argv is None else argv)
    bad = _undecodable(args)
    if bad is not None:
        _exit_with(f"argument {bad!r} is not valid UTF-8: give text in UTF-8", USAGE)
    if not set(args) & SERVICES:
        # a library's own warnings (aiokafka's "Unable connect to ...", psycopg's) would be
        # lines beside the one this prints; the services keep their logs
        logging.getLogger().setLevel(logging.CRITICAL)
    try:
        code = app(args=args, prog_name="metricloom", standalone_mode=False)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        _exit_with("interrupted", 130)
    except typer.TyperException as exc:  # Click's errors (Typer vendors Click)
        ctx = getattr(exc, "ctx", None)
        code = int(getattr(exc, "exit_code", USAGE))
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:  # a group alone
            typer.echo(ctx.get_help(), err=True)
            raise SystemExit(USAGE) from None
        where = f"{ctx.command_path}: " if ctx is not None else ""
        format_message = getattr(exc, "format_message", None)
        _exit_with(f"{where}{format_message() if format_message else exc}", code)
    except ValidationError as exc:
        _exit_with(describe(exc), USAGE)
    except MetricloomError as exc:
        _exit_with(str(exc), FAILED)
    except KeyboardInterrupt:
        _exit_with("interrupted", 130)
    except Exception as exc:
        if os.environ.get("METRICLOOM_DEBUG"):
            raise
        _exit_with(
            f"unexpected {type(exc).__name__}: {exc} (METRICLOOM_DEBUG=1 shows where)", FAILED
        )
    raise SystemExit(code if isinstance(code, int) else 0)


def _exit_with(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    raise SystemExit(code)
