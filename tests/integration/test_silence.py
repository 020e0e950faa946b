"""Validation that cannot pass silence, in the real sandbox on real-shaped samples from the
demo API: the issue's cases (a typo in a hinted path, a transformer that returns nothing,
a last value that is null) are refused with a line that says why, and at run time a
payload holding data that gives no points is a failure recorded on its metric."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from agents.generation import GenerationFailedError, fetch_sample, generate_metric
from agents.generators.offline import OfflineGenerator, metric_code_for
from agents.pipeline import Incoming
from agents.services import Services
from agents.transforming import TransformStage
from agents.validation import InvalidCodeError, validate_metric_code
from demo_api import coingecko
from schema import catalog
from schema.models import MetricTransformer
from streams.messages import DeadLetter, PointsBatch, RawPayload
from templates import get_template
from tests.conftest import DEMO_PARAMS
from tests.integration.conftest import stored_metric

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOTHING = "def transform(api_response, endpoint_config):\n    return []\n"


async def _sample(services: Services, template_id: str) -> tuple[Any, dict[str, Any]]:
    template = get_template(template_id)
    return await fetch_sample(services, template, {p: DEMO_PARAMS[p] for p in template.param_names})


async def test_a_typo_in_a_hinted_path_fails_generation_naming_it(services: Services) -> None:
    """``stargazer_count`` for ``stargazers_count``: before, the transformer returned
    nothing and validation skipped its check; now generation fails saying which path."""
    template = get_template("github-repo-stars")
    sample, config = await _sample(services, template.id)
    typo = template.model_copy(
        update={"hints": template.hints.model_copy(update={"value_path": "stargazer_count"})}
    )
    with pytest.raises(GenerationFailedError, match="value path 'stargazer_count' finds nothing"):
        await generate_metric(services, OfflineGenerator(), typo, sample, config, "python")


async def test_a_typo_in_rows_path_fails_generation(services: Services) -> None:
    """``result`` for ``results`` (PostHog): the rows are not there."""
    template = get_template("posthog-events")
    sample, config = await _sample(services, template.id)
    typo = template.model_copy(
        update={"hints": template.hints.model_copy(update={"rows_path": "result"})}
    )
    with pytest.raises(GenerationFailedError, match="rows_path 'result' finds nothing"):
        await generate_metric(services, OfflineGenerator(), typo, sample, config, "python")


async def test_code_returning_nothing_is_refused_when_the_sample_holds_values(
    services: Services,
) -> None:
    """An empty list from a sample with a value is not a transformer."""
    template = get_template("github-repo-stars")
    sample, config = await _sample(services, template.id)
    with pytest.raises(InvalidCodeError, match=r"no points, but the sample holds 1 value\(s\)"):
        await validate_metric_code(services, template, NOTHING, sample, config, "python")


async def test_a_null_last_value_no_longer_hides_an_empty_output(services: Services) -> None:
    """The old check read only the last row, and skipped itself when that was null."""
    template = get_template("posthog-events")
    sample, config = await _sample(services, template.id)
    sample["results"][-1][1] = None
    count = len(sample["results"]) - 1
    with pytest.raises(InvalidCodeError, match=rf"the sample holds {count} value\(s\) at 1"):
        await validate_metric_code(services, template, NOTHING, sample, config, "python")
    points = await validate_metric_code(
        services, template, metric_code_for(template), sample, config, "python"
    )
    assert len(points) == count


async def test_an_empty_answer_may_give_no_points(services: Services) -> None:
    """No values, no data: an empty output is right, and passes."""
    template = get_template("coingecko-bitcoin-usd")
    config = {"fetched_at": datetime.now(UTC).isoformat()}
    empty = {"rates": {"usd": {"name": "US Dollar", "unit": "$", "value": None}}}
    assert await validate_metric_code(services, template, NOTHING, empty, config, "python") == []


async def test_a_payload_with_data_and_no_points_fails_its_metric(
    services: Services, db_conn: Any
) -> None:
    """At run time, a transformer that returns nothing for a payload holding a value is a
    transform failure: dead-lettered, and the metric's last_error says why."""
    template = get_template("coingecko-bitcoin-usd")
    await catalog.insert_metric_transformer(
        db_conn,
        MetricTransformer(
            template_id=template.id,
            polling_endpoint=template.polling,
            code=NOTHING,
            generator="test-silent",
        ),
    )
    metric = await stored_metric(
        db_conn, f"silent-{uuid.uuid4().hex[:6]}", template_id=template.id, with_transformer=False
    )
    now = datetime.now(UTC)
    batch = []
    for n, payload in enumerate([coingecko.exchange_rates(now), {"rates": {}}]):
        raw = RawPayload(
            poll_id=uuid.uuid4(),
            metric_id=metric.id,
            organization_id=metric.organization_id,
            template_id=template.id,
            fetched_at=now,
            endpoint="/exchange_rates",
            payload=payload,
        )
        batch.append((Incoming("raw-payloads", 0, n, None, raw.to_bytes()), raw))
    sends = await TransformStage().handle(services, batch)
    letters = [s.record for s in sends if isinstance(s.record, DeadLetter)]
    assert [letter.offset for letter in letters] == [0]
    assert "the transformer returned no points, but the payload holds 1 value(s) at value" in (
        letters[0].error
    )
    assert [s.record.points for s in sends if isinstance(s.record, PointsBatch)] == [[]]
    cur = await db_conn.execute("SELECT last_error FROM metrics WHERE id = %s", (metric.id,))
    row = await cur.fetchone()
    assert "returned no points, but the payload holds 1 value(s)" in row["last_error"]
