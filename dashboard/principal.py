"""The dashboard's own Kafka principal (``dashboard``, a reserved name no organisation can
take): it may read the ``dead-letter`` topic, which no tenant may, so the read API can
show an organisation its own dead letters. Everything else the dashboard does, it does as
the logged-in organisation."""

from __future__ import annotations

from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from streams.settings import Settings
from streams.tenants import Grant, Tenants
from streams.topics import topic_name

PRINCIPAL = "dashboard"


def dashboard_grants(settings: Settings) -> list[Grant]:
    """Read the dead-letter topic (its partitions assigned, no consumer group)."""
    return [
        Grant(
            ResourceType.TOPIC,
            topic_name(settings, "dead-letter"),
            ResourcePatternType.LITERAL,
            AclOperation.READ,
        )
    ]


def grant_dashboard(settings: Settings, password: str, principal: str = PRINCIPAL) -> None:
    """Create or update the principal and its ACL (run as the admin principal)."""
    tenants = Tenants(settings)
    tenants.set_password(principal, password)
    tenants.grant(principal, dashboard_grants(settings))
    tenants.wait_until_usable(principal, password)
