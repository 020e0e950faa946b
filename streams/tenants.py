"""Who may talk to the cluster: tenants and the worker, as Kafka principals with ACLs.

A tenant (an organisation) is a SCRAM-SHA-512 principal named after its organisation id,
with its own topics: it may write ``commands.<org>`` and read ``command-results.<org>``,
``chart-configs.<org>``, ``alerts.<org>`` and ``backfill-progress.<org>``, and use consumer
groups named ``<org>.…``; nothing else (the broker denies what no ACL allows). The worker
principal may use the internal topics and read every tenant's commands and write every
tenant's answers (prefixed ACLs on the topic families). The admin principal (a super user)
runs this module.

aiokafka has no API for users or ACLs: this module uses confluent-kafka's admin client
(librdkafka), the maintained one that has both.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from schema.exceptions import KafkaUnavailableError, MetricloomError
from streams.security import librdkafka_config
from streams.settings import Settings
from streams.topics import INTERNAL, RESERVED_PRINCIPALS, TENANT, check_organization, topic_name

ITERATIONS = 8192
TENANT_READS = tuple(base for base in TENANT if base != "commands")


class TenantError(MetricloomError):
    """A tenant operation the cluster refused (or a tenant that does not exist)."""


@dataclass(frozen=True)
class Grant:
    """One ACL: a resource (topic or group, literal or prefixed) and what may be done."""

    resource: ResourceType
    name: str
    pattern: ResourcePatternType
    operation: AclOperation

    def binding(self, principal: str) -> AclBinding:
        return AclBinding(
            self.resource,
            self.name,
            self.pattern,
            f"User:{principal}",
            "*",
            self.operation,
            AclPermissionType.ALLOW,
        )


def tenant_grants(settings: Settings, org: str) -> list[Grant]:
    """What an organisation's principal may do: its commands topic, its answer topics,
    its own consumer groups."""
    topic, literal = ResourceType.TOPIC, ResourcePatternType.LITERAL
    grants = [Grant(topic, topic_name(settings, "commands", org), literal, AclOperation.WRITE)]
    grants += [
        Grant(topic, topic_name(settings, base, org), literal, AclOperation.READ)
        for base in TENANT_READS
    ]
    grants.append(
        Grant(ResourceType.GROUP, f"{org}.", ResourcePatternType.PREFIXED, AclOperation.READ)
    )
    return grants


def worker_grants(settings: Settings) -> list[Grant]:
    """What the worker's principal may do: everything on its own topics (it creates them
    at start, and Faust its leader topic), read every tenant's commands, write every
    tenant's answers, and its consumer groups."""
    topic = ResourceType.TOPIC
    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    grants = [
        Grant(topic, topic_name(settings, base), literal, operation)
        for base in INTERNAL
        for operation in (AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE)
    ]
    leader = f"{settings.app_id}-__assignor-__leader"
    grants += [
        Grant(topic, leader, literal, operation)
        for operation in (AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE)
    ]
    grants.append(Grant(topic, f"{settings.topic_prefix}commands.", prefixed, AclOperation.READ))
    grants += [
        Grant(topic, f"{settings.topic_prefix}{base}.", prefixed, AclOperation.WRITE)
        for base in TENANT_READS
    ]
    grants.append(Grant(ResourceType.GROUP, settings.app_id, prefixed, AclOperation.READ))
    return grants


class Tenants:
    """Principals and ACLs, through an admin client authenticated as a super user."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin = AdminClient(librdkafka_config(settings) | {"log_level": 3})

    def _wait(self, futures: Iterable[object], what: str) -> None:
        for future in futures:
            try:
                future.result(timeout=30)  # type: ignore[attr-defined]
            except KafkaException as exc:
                raise TenantError(f"{what}: {exc.args[0].str()}") from exc
            except TimeoutError as exc:
                raise KafkaUnavailableError(f"{what}: no answer from the broker") from exc

    def set_password(self, principal: str, password: str) -> None:
        """Create the principal, or change its password."""
        upsert = UserScramCredentialUpsertion(
            principal,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, ITERATIONS),
            password.encode(),
        )
        results = self._admin.alter_user_scram_credentials([upsert])
        self._wait(results.values(), f"credentials of {principal!r}")

    def grant(self, principal: str, grants: list[Grant]) -> None:
        bindings = [grant.binding(principal) for grant in grants]
        self._wait(self._admin.create_acls(bindings).values(), f"ACLs of {principal!r}")

    def ungrant(self, principal: str, grants: list[Grant]) -> None:
        """Delete exactly these ACLs of the principal (a test deployment's, at its end)."""
        filters = [
            AclBindingFilter(
                g.resource,
                g.name,
                g.pattern,
                f"User:{principal}",
                "*",
                g.operation,
                AclPermissionType.ALLOW,
            )
            for g in grants
        ]
        self._wait(self._admin.delete_acls(filters).values(), f"ACLs of {principal!r}")

    def revoke(self, principal: str) -> None:
        """Every ACL of the principal, and its password: replaced by a random one nobody
        holds. Not deleted: on Apache Kafka 3.9.1 a deleted SCRAM credential (a
        RemoveUserScramCredentialRecord in the metadata log) makes the broker come back
        from its next restart with no SCRAM credential at all — admin and worker included
        (reproduced here; the controller replays them, the broker's image does not have
        them). Replacing the password revokes the same way and survives restarts."""
        every = AclBindingFilter(
            ResourceType.ANY,
            None,  # type: ignore[arg-type]  # None matches any name (the library's own docs)
            ResourcePatternType.ANY,
            f"User:{principal}",
            None,  # type: ignore[arg-type]  # any host
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        self._wait(self._admin.delete_acls([every]).values(), f"ACLs of {principal!r}")
        self.set_password(principal, secrets.token_urlsafe(32))

    def principals(self) -> list[str]:
        """Every SCRAM principal the cluster knows."""
        try:
            future = self._admin.describe_user_scram_credentials()
            described = future.result(timeout=30)  # type: ignore[union-attr]  # no users named
        except KafkaException as exc:
            raise TenantError(f"listing principals: {exc.args[0].str()}") from exc
        return sorted(described)

    def add_tenant(self, org: str, password: str | None = None) -> str:
        """A tenant's principal, ACLs (its topics are made by the caller); returns the
        password (generated unless given: it is shown once and kept nowhere else)."""
        check_organization(org)
        password = password or secrets.token_urlsafe(24)
        self.set_password(org, password)
        self.grant(org, tenant_grants(self.settings, org))
        self.wait_until_usable(org, password)
        return password

    def wait_until_usable(self, principal: str, password: str, timeout_s: float = 30) -> None:
        """A new credential takes the broker a moment: return once it authenticates, so
        the credentials handed out work at once."""
        config = librdkafka_config(self.settings) | {
            "sasl.username": principal,
            "sasl.password": password,
            "log_level": 0,
        }
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                AdminClient(config).list_topics(timeout=5)
                return
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise TenantError(f"{principal!r} cannot authenticate: {exc}") from exc
                time.sleep(0.5)  # the broker has not applied the credential yet

    def remove_tenant(self, org: str) -> None:
        check_organization(org)
        self.revoke(org)

    def tenants(self) -> list[str]:
        """Organisations with a principal that has ACLs (a removed one keeps a credential
        nobody knows, and no ACL: see :meth:`revoke`)."""
        granted = {binding.principal.removeprefix("User:") for binding in self._acls(None)}
        return [p for p in self.principals() if p not in RESERVED_PRINCIPALS and p in granted]

    def _acls(self, principal: str | None) -> list[AclBinding]:
        """The ACLs of one principal (or of every principal)."""
        every = AclBindingFilter(
            ResourceType.ANY,
            None,  # type: ignore[arg-type]  # None matches any name (the library's own docs)
            ResourcePatternType.ANY,
            None if principal is None else f"User:{principal}",  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]  # any host
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        try:
            return list(self._admin.describe_acls(every).result(timeout=30))
        except KafkaException as exc:
            raise TenantError(f"listing ACLs: {exc.args[0].str()}") from exc

    def grant_worker(self, password: str | None) -> None:
        """The worker's principal (its password from the settings, when given) and ACLs."""
        principal = self.settings.kafka.worker_username
        if password:
            self.set_password(principal, password)
        self.grant(principal, worker_grants(self.settings))
