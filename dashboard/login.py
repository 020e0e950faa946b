"""Logging in as an organisation: the credential is the organisation's Kafka password.

The broker is the judge. A SCRAM-SHA-512 handshake as the organisation's principal proves
the password (the dashboard keeps no password list of its own), and describing the
organisation's commands topic as that principal proves the principal is the organisation's
(an ACL ``metricloom tenant add`` made): a principal that authenticates but may not use
``commands.<org>`` is not that organisation.
"""

from __future__ import annotations

import structlog
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed
from pydantic import SecretStr

from dashboard.exceptions import LoginRefusedError
from schema.exceptions import KafkaUnavailableError, MetricloomError
from streams.admin import partitions
from streams.security import MECHANISM
from streams.settings import Settings
from streams.topics import InvalidOrganizationError, check_organization

log = structlog.get_logger()


def as_tenant(settings: Settings, org: str, password: SecretStr) -> Settings:
    """The pipeline settings with the organisation's principal in place of the process's:
    every Kafka client made from them acts as the organisation."""
    kafka = settings.kafka.model_copy(update={"username": org, "password": password})
    return settings.model_copy(update={"kafka": kafka})


async def verify(settings: Settings, org: str, password: SecretStr) -> Settings:
    """The organisation's settings if the broker accepts ``password`` for ``org`` and the
    principal may use the organisation's commands topic; :class:`LoginRefusedError`
    otherwise (one line, the same for an unknown organisation and a wrong password)."""
    refused = LoginRefusedError("organisation or password not accepted")
    try:
        check_organization(org)
    except InvalidOrganizationError as exc:
        raise refused from exc
    tenant = as_tenant(settings, org, password)
    await _handshake(settings, org, password)
    try:
        await partitions(tenant, "commands", org)
    except (KafkaError, MetricloomError) as exc:
        log.info("login.refused", organization_id=org, error=type(exc).__name__)
        raise refused from exc
    return tenant


async def _handshake(settings: Settings, org: str, password: SecretStr) -> None:
    """One SASL/SCRAM handshake with a bootstrap broker as ``org``. A client's bootstrap
    (aiokafka's ``start``) reports a refused password only as "unable to bootstrap", like
    an unreachable broker; a single connection tells the two apart."""
    refused = LoginRefusedError("organisation or password not accepted")
    errors: list[str] = []
    for server in settings.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await create_conn(
                host,
                int(port),
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=MECHANISM,
                sasl_plain_username=org,
                sasl_plain_password=password.get_secret_value(),
            )
        except SaslAuthenticationFailed as exc:
            log.info("login.refused", organization_id=org, error="authentication failed")
            raise refused from exc
        except (OSError, KafkaError) as exc:
            errors.append(f"{server}: {exc}")
            continue
        conn.close()
        return
    raise KafkaUnavailableError(f"no Kafka broker answered: {'; '.join(errors)}")
