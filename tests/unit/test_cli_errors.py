"""Bad arguments and absent services are one line on stderr with the documented exit
status, never a traceback: the real entry point (``python -m metricloom.cli``) in a
subprocess, with services pointed at ports where nothing listens."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from metricloom.choices import AggregationChoice, ChartTypeChoice
from metricloom.console import table
from schema.models import ChartType
from streams.messages import CreateDashboardMetric
from tests.conftest import ROOT

METRIC = "00000000-0000-0000-0000-000000000001"


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    port = _closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICLOOM_")}
    env |= {
        "METRICLOOM_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "METRICLOOM_DATABASE_URL": f"postgresql://nobody:nothing@127.0.0.1:{port}/none",
    }
    return subprocess.run(
        [sys.executable, "-m", "metricloom.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


def _one_line(done: subprocess.CompletedProcess[bytes]) -> str:
    err = done.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["dashboard", "add", METRIC, "--org", "o", "--dashboard", "d", "--chart-type", "donut"],
            "'line', 'bar', 'area', 'pie', 'radar', 'radial', 'kpi'",
        ),
        (
            ["dashboard", "add", METRIC, "--org", "o", "--dashboard", "d", "--days", "0"],
            "1 to 3660",
        ),
        (
            ["dashboard", "add", METRIC, "--org", "o", "--dashboard", "d", "--days", "forever"],
            "'forever' is not a number of days: give 1 to 3660, or all",
        ),
        (
            ["dashboard", "add", METRIC, "--org", "o", "--dashboard", "d", "--aggregation", "mean"],
            "'sum', 'avg', 'min', 'max', 'last', 'count'",
        ),
        (["metric", "list", "--org", ""], "not an organisation id: 1-63 of a-z 0-9 _ -"),
        (["metric", "list", "--org", "Acme Corp"], "not an organisation id"),
        (["metric", "list"], "Missing option '--org'"),
        (
            [
                "connection",
                "add",
                "--org",
                "o",
                "--provider",
                "github",
                "--nango-connection-id",
                "x",
            ],
            "--nango-connection-id and --nango-provider-config-key go together",
        ),
        (["connection", "add", "--org", "o", "--provider", "gitlab"], "give one of"),
        (
            ["metric", "set-frequency", METRIC, "--org", "o", "--frequency", "often"],
            "'frequent', 'hourly', 'daily', 'weekly', 'manual'",
        ),
        (["metric", "pause", "not-an-id", "--org", "o"], "metric_id"),
        (["metric", "show", METRIC, "--org", "o", "--colour"], "No such option"),
        (["transformer", "show", "github-repo-stars@x", "--org", "o"], "must be a number"),
        (["template", "show", "no-such-template", "--org", "o"], "unknown template"),
        (["dead-letter", "replay"], "name dead letters to replay"),
        (["transformer", "generate"], "name exactly one of --template and --all"),
        (
            ["transformer", "generate", "--all", "--template", "github-repo-stars"],
            "name exactly one of --template and --all",
        ),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    """Each bad argument is refused in one line naming what is allowed, exit status 2."""
    done = _run(*args)
    line = _one_line(done)
    assert done.returncode == 2, line
    assert says in line


def test_a_non_utf8_argument_is_one_line_and_exit_2() -> None:
    """Bytes that are not UTF-8 in an argument are refused before anything runs."""
    done = _run("metric", "list", "--org", b"acme\xff")
    line = _one_line(done)
    assert done.returncode == 2
    assert "not valid UTF-8" in line and "\\xff" in line


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["metric", "pause", METRIC, "--org", "o", "--timeout", "5"], "Kafka at 127.0.0.1:"),
        (["metric", "delete", METRIC, "--org", "o", "--json"], "Kafka at 127.0.0.1:"),
        (["transformer", "generate", "--all", "--timeout", "5"], "Kafka at 127.0.0.1:"),
        (["metric", "list", "--org", "o"], "database unavailable"),
        (["metric", "show", METRIC, "--org", "o", "--json"], "database unavailable"),
        (["connection", "list", "--org", "o"], "database unavailable"),
    ],
)
def test_a_service_away_is_one_line_and_exit_1(args: list[str], says: str) -> None:
    """Kafka or the database away: one line saying which and where, exit status 1."""
    done = _run(*args)
    line = _one_line(done)
    assert done.returncode == 1, line
    assert says in line
    assert done.stdout == b""


def test_choices_mirror_the_models() -> None:
    """The CLI's enumerations list exactly the values the models accept."""
    assert [c.value for c in ChartTypeChoice] == list(get_args(ChartType))
    aggregation = CreateDashboardMetric.model_fields["aggregation"].annotation
    assert [c.value for c in AggregationChoice] == list(get_args(aggregation))


def test_a_table_keeps_every_cell_on_one_line() -> None:
    """Cells with newlines (an error text) stay on their row; None shows as '-'."""
    text = table(
        [{"id": "a", "error": "line one\nline two"}, {"id": "bb", "error": None}], ["id", "error"]
    )
    assert text.splitlines() == ["ID  ERROR", "a   line one line two", "bb  -"]


def test_demo_api_on_a_busy_port_says_so_in_one_line() -> None:
    """Another process holds the port: one line naming it, exit status 1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = _run("demo-api", "--port", str(port))
    line = _one_line(done)
    assert done.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in line


def test_demo_api_says_where_it_listens() -> None:
    """Once the port is bound, one line on stderr names the address it serves."""
    port = _closed_port()
    with subprocess.Popen(
        [sys.executable, "-m", "metricloom.cli", "demo-api", "--port", str(port)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            first = proc.stderr.readline()  # blocks until the server announces itself
            assert first.startswith(f"demo-api: listening on http://127.0.0.1:{port} ")
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # and it really listens there
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_an_import_kafka_cannot_take_reports_what_went_unanswered(tmp_path: Path) -> None:
    """Kafka away mid-import: the summary still comes (nothing accepted, every command
    unanswered), then one line naming the organisation it stopped at, exit status 1."""
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"organization_id": "acme", "template_id": "github-repo-stars",'
        ' "params": {"OWNER": "a", "REPO": "b"}}\n'
        '{"organization_id": "beta", "template_id": "github-repo-stars",'
        ' "params": {"OWNER": "a", "REPO": "b"}}\n'
    )
    done = _run("metric", "import", str(path), "--timeout", "5")
    line = _one_line(done)
    assert done.returncode == 1, line
    assert "organisation 'acme': Kafka at 127.0.0.1:" in line
    assert "2 of 2 commands unanswered" in line and "creates nothing twice" in line
    assert json.loads(done.stdout) == {
        "metrics": 2,
        "charts": 0,
        "accepted": 0,
        "rejected": [],
        "unanswered": 2,
    }
