"""Bad commands on the commands topic get a clear error event and stop nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streams.messages import CreateMetric
from tests.conftest import WorkerProcess
from tests.integration.conftest import Kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _result_for(kafka: Kafka, command_id: str, org: str = "acme") -> dict[str, Any]:
    _, result = await kafka.wait_for(
        "command-results", lambda v: v.get("command_id") == command_id, 60, org
    )
    return result


async def test_unknown_template_is_rejected_with_reason(
    worker: WorkerProcess, kafka: Kafka
) -> None:
    """An unknown template id is rejected, naming the templates that exist; the dead letter
    keeps the inbox envelope, which holds the tenant's record."""
    command = CreateMetric(organization_id="acme", template_id="no-such-template", params={})
    await kafka.command(command)
    result = await _result_for(kafka, str(command.command_id))
    assert result["status"] == "rejected"
    assert "unknown template 'no-such-template'" in result["error"]
    assert "github-repo-stars" in result["error"]
    _, dead = await kafka.wait_for(
        "dead-letter", lambda v: str(command.command_id) in (v["original"] or ""), timeout=30
    )
    assert dead["stage"] == "commands" and dead["topic"] == "command-inbox"
    assert dead["error_type"] == "CommandRejectedError"
    assert dead["organization_id"] == "acme"


async def test_missing_parameter_is_rejected_with_reason(
    worker: WorkerProcess, kafka: Kafka
) -> None:
    """A template parameter left out is named in the rejection."""
    command = CreateMetric(
        organization_id="acme", template_id="github-repo-stars", params={"OWNER": "octocat"}
    )
    await kafka.command(command)
    result = await _result_for(kafka, str(command.command_id))
    assert result["status"] == "rejected"
    assert "needs parameter(s) REPO" in result["error"]


async def test_a_parameter_that_would_leave_the_path_is_rejected(
    worker: WorkerProcess, kafka: Kafka
) -> None:
    """``OWNER=..`` would make ``/repos/../user`` = ``/user`` once the URL is normalised:
    the command is rejected naming the parameter, and no metric is created."""
    command = CreateMetric(
        organization_id="acme",
        template_id="github-repo-stars",
        params={"OWNER": "..", "REPO": "user"},
    )
    await kafka.command(command)
    result = await _result_for(kafka, str(command.command_id))
    assert result["status"] == "rejected"
    assert "parameter OWNER may not be '..' (a dot segment)" in result["error"]
    assert result["metric_id"] is None


@pytest.mark.parametrize(
    ("template_id", "params", "reason"),
    [
        (
            "github-repo-stars",
            {"OWNER": "octocat", "REPO": "hello world"},
            "template 'github-repo-stars': parameter REPO='hello world' does not match"
            " ^[A-Za-z0-9_.-]{1,100}$",
        ),
        (
            "youtube-video-views",
            {"VIDEO_ID": "dQw4w9WgXcQ,other"},
            "parameter VIDEO_ID='dQw4w9WgXcQ,other' does not match ^[A-Za-z0-9_-]{11}$",
        ),
    ],
)
async def test_a_parameter_its_pattern_refuses_is_rejected(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any, template_id: str, params: Any, reason: str
) -> None:
    """A value outside its template parameter's pattern is rejected with one line naming
    the parameter and the pattern; no metric is created."""
    command = CreateMetric(organization_id="acme", template_id=template_id, params=params)
    await kafka.command(command)
    result = await _result_for(kafka, str(command.command_id))
    assert result["status"] == "rejected"
    assert reason in result["error"] and "\n" not in result["error"]
    assert result["metric_id"] is None
    cur = await db_conn.execute(
        "SELECT count(*) AS n FROM metrics WHERE id = %s", (command.resolved_metric_id(),)
    )
    assert (await cur.fetchone())["n"] == 0


async def test_malformed_json_and_schema_errors_are_dead_lettered(
    worker: WorkerProcess, kafka: Kafka
) -> None:
    """Bytes that are not JSON, and JSON that is not a command, each produce a rejection
    event and a dead letter carrying the original; a valid command after them still runs."""
    marker = uuid.uuid4().hex
    await kafka.produce("commands", f"{{not json {marker}".encode(), org="acme")
    _, dead = await kafka.wait_for(
        "dead-letter", lambda v: marker in (v["original"] or ""), timeout=60
    )
    assert dead["stage"] == "commands"
    assert dead["error_type"] == "MalformedRecordError"
    assert "Invalid JSON" in dead["error"]

    bad_id = str(uuid.uuid4())
    await kafka.produce(
        "commands",
        f'{{"type": "create_metric", "command_id": "{bad_id}", "organization_id": "acme"}}'.encode(),
        org="acme",
    )
    result = await _result_for(kafka, bad_id)
    assert result["status"] == "rejected"
    assert "template_id" in result["error"] and "Field required" in result["error"]

    good = CreateMetric(
        organization_id="acme",
        template_id="github-repo-stars",
        params={"OWNER": "octocat", "REPO": "still-running"},
    )
    await kafka.command(good)
    assert (await _result_for(kafka, str(good.command_id)))["status"] == "accepted"


async def test_dashboard_metric_for_another_organisations_metric_is_rejected(
    worker: WorkerProcess, kafka: Kafka
) -> None:
    """A tenant cannot chart a metric it does not own: the lookup filters by organisation."""
    owner = CreateMetric(
        organization_id="owner-org",
        template_id="github-repo-stars",
        params={"OWNER": "octocat", "REPO": "private-ish"},
    )
    await kafka.command(owner)
    created = await _result_for(kafka, str(owner.command_id), "owner-org")
    assert created["status"] == "accepted"
    intruder_id = str(uuid.uuid4())
    await kafka.produce(
        "commands",
        (
            '{{"type": "create_dashboard_metric", "command_id": "{}", "organization_id": "other-org",'
            ' "dashboard_id": "d", "metric_id": "{}"}}'.format(intruder_id, created["metric_id"])
        ).encode(),
        org="other-org",
    )
    result = await _result_for(kafka, intruder_id, "other-org")
    assert result["status"] == "rejected"
    assert "has no metric" in result["error"]
