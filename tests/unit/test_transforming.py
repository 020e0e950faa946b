"""How the transform stage cuts a batch into sandbox batches (plain values, no services)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from agents.pipeline import Incoming
from agents.transforming import transform_groups
from streams.messages import RawPayload


def _raw(org: str, template: str = "github-repo-stars", historical: bool = False) -> RawPayload:
    return RawPayload(
        metric_id=uuid.uuid4(),
        organization_id=org,
        template_id=template,
        fetched_at=datetime.now(UTC),
        endpoint="/repos/o/r",
        payload={},
        historical=historical,
    )


def test_organisations_never_share_a_sandbox_batch() -> None:
    """Payloads of one template from two organisations make two groups (two containers),
    each holding only its organisation's payloads, in their order."""
    message = Incoming("raw-payloads", 0, 0, None, b"{}")
    batch = [(message, _raw(org)) for org in ("a", "b", "a", "b", "b")]
    groups = transform_groups(batch)
    assert set(groups) == {("github-repo-stars", "a", False), ("github-repo-stars", "b", False)}
    for (_, org, _), items in groups.items():
        assert {raw.organization_id for _, raw in items} == {org}
    assert [raw for _, raw in groups[("github-repo-stars", "b", False)]] == [
        raw for _, raw in batch if raw.organization_id == "b"
    ]


def test_history_and_templates_are_their_own_groups() -> None:
    """History may have its own code, and each template has its own: separate groups even
    within one organisation."""
    message = Incoming("raw-payloads", 0, 0, None, b"{}")
    batch = [
        (message, _raw("a")),
        (message, _raw("a", historical=True)),
        (message, _raw("a", template="github-repo-forks")),
    ]
    assert len(transform_groups(batch)) == 3
