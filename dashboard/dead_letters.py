"""An organisation's dead letters, read off the shared ``dead-letter`` topic.

No tenant may read that topic (it holds every organisation's failed records), so the
dashboard reads it as its own principal, which may read that topic and nothing else
(``python -m dashboard grant``), and hands a session only the letters naming its
organisation.
"""

from __future__ import annotations

from dashboard.exceptions import NotConfiguredError
from dashboard.views import DeadLetterView
from streams import dead_letters
from streams.settings import Settings

ORIGINAL_SHOWN = 4000


async def organization_dead_letters(settings: Settings, org: str) -> list[DeadLetterView]:
    if settings.kafka.username is None:
        raise NotConfiguredError(
            "dead letters need the dashboard's own principal (METRICLOOM_KAFKA__USERNAME)"
        )
    wanted = dead_letters.Filter(organization_id=org)
    letters = [letter async for letter in dead_letters.read(settings, wanted)]
    letters.sort(key=lambda letter: letter.failed_at, reverse=True)
    return [
        DeadLetterView(
            id=letter.id,
            stage=letter.stage,
            topic=letter.topic,
            error_type=letter.error_type,
            error=letter.error,
            metric_id=letter.metric_id,
            failed_at=letter.failed_at,
            original=(letter.original or "")[:ORIGINAL_SHOWN] or None,
        )
        for letter in letters
    ]
