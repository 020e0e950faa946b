"""`metricloom metric import` through the real worker, Kafka and TimescaleDB: a file of
1,000 metrics imported twice gives 1,000 metrics, each once; a bad line sends nothing."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings
from tests.conftest import WorkerProcess, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORG = "acme"
COUNT = 1_000


def run_import(settings: Settings, path: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(settings, "metric", "import", str(path), "--org", ORG, timeout=600)


async def imported(db_conn: Any, owner: str) -> dict[str, int]:
    """How many metrics of acme poll ``owner``'s repositories, and how many distinct ones."""
    cur = await db_conn.execute(
        "SELECT count(*) AS n, count(DISTINCT params->>'REPO') AS repos FROM metrics"
        " WHERE organization_id = %s AND template_id = 'github-repo-stars'"
        " AND params->>'OWNER' = %s",
        (ORG, owner),
    )
    row: dict[str, int] = await cur.fetchone()
    return row


async def test_a_file_imported_twice_gives_each_metric_once(
    worker: WorkerProcess, settings: Settings, db_conn: Any, tmp_path: Path
) -> None:
    """1,000 lines (and one repeated) imported twice: 1,000 metrics, one per repository, the
    second run answered from the command log with the same 1,000."""
    owner = f"import-{uuid.uuid4().hex[:8]}"
    lines = [
        json.dumps(
            {
                "template_id": "github-repo-stars",
                "params": {"OWNER": owner, "REPO": f"repo-{i:04d}"},
                "poll_frequency": "daily",
            }
        )
        for i in range(COUNT)
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join([*lines, lines[17]]) + "\n")

    for _ in range(2):
        done = run_import(settings, path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {
            "metrics": COUNT,
            "charts": 0,
            "accepted": COUNT,
            "rejected": [],
            "unanswered": 0,
        }
        assert await imported(db_conn, owner) == {"n": COUNT, "repos": COUNT}


async def test_a_bad_line_is_named_and_nothing_is_sent(
    worker: WorkerProcess, settings: Settings, db_conn: Any, tmp_path: Path
) -> None:
    """A line that is not a metric stops the import before anything is sent (exit 2, one
    line naming the file and line); a metric the worker rejects is listed, exit 1."""
    owner = f"import-{uuid.uuid4().hex[:8]}"
    good = {"template_id": "github-repo-stars", "params": {"OWNER": owner, "REPO": "one"}}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + '{"template_id": "github-repo-stars", "x": 1}\n')
    done = run_import(settings, path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {path}:2: x: Extra inputs are not permitted"
    assert await imported(db_conn, owner) == {"n": 0, "repos": 0}

    unknown = {"template_id": "no-such-template", "params": {}}
    path.write_text(json.dumps(good) + "\n" + json.dumps(unknown) + "\n")
    done = run_import(settings, path)
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert (summary["metrics"], summary["charts"], summary["accepted"]) == (2, 0, 1)
    [rejected] = summary["rejected"]
    assert rejected["template_id"] == "no-such-template" and rejected["error"]
    assert rejected["organization_id"] == ORG and summary["unanswered"] == 0
    assert await imported(db_conn, owner) == {"n": 1, "repos": 1}


async def test_a_csv_import_places_charts_once(
    worker: WorkerProcess, settings: Settings, db_conn: Any, tmp_path: Path
) -> None:
    """A CSV with a dashboard column: the chart is created after its metric, and an import
    run twice leaves one chart."""
    owner = f"import-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "metrics.csv"
    path.write_text(
        "template_id,params.OWNER,params.REPO,dashboard_id,chart_type,title\n"
        f"github-repo-stars,{owner},charted,imported,bar,Imported stars\n"
        f"github-repo-stars,{owner},plain,,,\n"
    )
    for _ in range(2):
        done = run_import(settings, path)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary == {
            "metrics": 2,
            "charts": 1,
            "accepted": 3,
            "rejected": [],
            "unanswered": 0,
        }
    cur = await db_conn.execute(
        "SELECT d.title, m.params->>'REPO' AS repo FROM dashboard_metrics d"
        " JOIN metrics m ON m.id = d.metric_id WHERE d.organization_id = %s"
        " AND m.params->>'OWNER' = %s",
        (ORG, owner),
    )
    assert await cur.fetchall() == [{"title": "Imported stars", "repo": "charted"}]
    assert await imported(db_conn, owner) == {"n": 2, "repos": 2}
