"""Kafka client authentication, from the settings, for every client this process opens:
aiokafka (the worker's stages, the CLI, the tests), Faust, and the admin client.

The credentials are the settings' (``METRICLOOM_KAFKA__USERNAME`` / ``__PASSWORD``), never
a command-line argument; the password is a ``SecretStr`` read only here.
"""

from __future__ import annotations

from typing import Any

from streams.settings import Settings

MECHANISM = "SCRAM-SHA-512"


def aiokafka_auth(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (consumer, producer, admin)."""
    kafka = settings.kafka
    if kafka.username is None:
        return {}
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": kafka.username,
        "sasl_plain_password": kafka.password.get_secret_value() if kafka.password else "",
    }


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` (None for an unauthenticated cluster)."""
    kafka = settings.kafka
    if kafka.username is None:
        return None
    import faust

    return faust.SASLCredentials(
        username=kafka.username,
        password=kafka.password.get_secret_value() if kafka.password else "",
        mechanism=MECHANISM,
    )


def librdkafka_config(settings: Settings) -> dict[str, str | int | float | bool]:
    """Configuration for a confluent-kafka (librdkafka) client: the admin operations
    aiokafka does not have (SCRAM users, ACLs)."""
    config: dict[str, str | int | float | bool] = {"bootstrap.servers": settings.kafka_bootstrap}
    kafka = settings.kafka
    if kafka.username is not None:
        config |= {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": MECHANISM,
            "sasl.username": kafka.username,
            "sasl.password": kafka.password.get_secret_value() if kafka.password else "",
        }
    return config
