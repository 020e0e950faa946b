"""Stored transformers carry their language (migration 0015): a heal under
``METRICLOOM_TRANSFORMER_LANGUAGE=typescript`` replaces a Python transformer by a
TypeScript one (its compiled JavaScript stored beside it, the history's own transformer
rewritten too), the transform stage runs it, and a rollback to the Python version runs
Python again. Real database, real sandbox, the codegen stage without Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from agents.codegen import CodegenStage
from agents.generators.offline import OfflineGenerator, metric_code_for
from agents.pipeline import Incoming
from agents.services import Services
from schema import catalog
from schema.models import DataPoint, MetricTransformer
from streams.messages import CodegenRequest
from streams.settings import Settings
from templates import get_template
from tests.integration.conftest import stored_metric

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def ts_services(settings: Settings) -> AsyncIterator[Services]:
    """The stages' resources with TypeScript as the deployment's language."""
    svc = Services.from_settings(settings.model_copy(update={"transformer_language": "typescript"}))
    yield svc
    await svc.close()


async def _points(services: Services, transformer: MetricTransformer, sample: Any) -> list[Any]:
    code, language = transformer.runnable()
    config = {"fetched_at": datetime(2026, 1, 2, tzinfo=UTC).isoformat()}
    [result] = await services.sandbox.run(code, "transform", [(sample, config)], None, language)
    assert result.error is None, result.error
    return [DataPoint.model_validate(p) for p in result.value]


async def test_a_heal_changes_the_language_and_a_rollback_changes_it_back(
    ts_services: Services, db_conn: Any
) -> None:
    template = get_template("github-commit-activity")  # its history has its own transformer
    await db_conn.execute("DELETE FROM metric_transformers WHERE template_id = %s", (template.id,))
    metric = await stored_metric(db_conn, "language", template_id=template.id)
    python = await catalog.get_metric_transformer(db_conn, template.id)
    assert python is not None and python.language == "python" and python.compiled_code is None
    await db_conn.execute(
        "UPDATE metric_transformers SET historical_code = %s, status = 'regenerating'"
        " WHERE template_id = %s",
        (metric_code_for(template.for_history()), template.id),
    )
    request = CodegenRequest(
        kind="metric",
        reason="heal",
        template_id=template.id,
        metric_id=metric.id,
        version=python.version,
    )
    await CodegenStage(OfflineGenerator()).handle(
        ts_services, [(Incoming("codegen-requests", 0, 1, None, request.to_bytes()), request)]
    )
    healed = await catalog.get_metric_transformer(db_conn, template.id)
    assert healed is not None and healed.version == python.version + 1
    assert healed.language == "typescript" and healed.status == "active"
    assert "function transform(apiResponse: any" in healed.code
    assert healed.compiled_code and "apiResponse: any" not in healed.compiled_code
    assert healed.historical_code and "function transform(" in healed.historical_code
    assert healed.historical_compiled_code
    sample = healed.input_example
    assert await _points(ts_services, healed, sample) == await _points(ts_services, python, sample)

    old = await catalog.get_metric_transformer_version(db_conn, template.id, python.version)
    assert old is not None and old.language == "python" and old.compiled_code is None
    await catalog.promote_metric_transformer(db_conn, old)
    rolled = await catalog.get_metric_transformer(db_conn, template.id)
    assert rolled is not None and rolled.version == python.version + 2
    assert rolled.language == "python" and rolled.compiled_code is None
    assert rolled.runnable() == (python.code, "python")
    kept = await catalog.get_metric_transformer_version(db_conn, template.id, healed.version)
    assert kept is not None and kept.language == "typescript"
    assert kept.compiled_code == healed.compiled_code


async def test_typescript_without_its_javascript_is_refused(db_conn: Any) -> None:
    """The database keeps a TypeScript transformer only with the code the sandbox runs."""
    import psycopg

    template = get_template("youtube-channel-subscribers")
    await db_conn.execute("DELETE FROM metric_transformers WHERE template_id = %s", (template.id,))
    with pytest.raises(psycopg.errors.CheckViolation):
        await catalog.insert_metric_transformer(
            db_conn,
            MetricTransformer(
                template_id=template.id,
                polling_endpoint=template.polling,
                code="function transform(a: any, c: EndpointConfig): DataPoint[] { return []; }",
                generator="test",
                language="typescript",
            ),
        )
