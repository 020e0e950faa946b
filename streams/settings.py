"""One settings object for the whole process, read once from the environment.

Every variable is prefixed ``METRICLOOM_`` (nested groups use ``__``, e.g.
``METRICLOOM_SANDBOX__MEMORY_MB``). The object is frozen and passed down explicitly;
nothing deeper in the code reads ``os.environ``. Secrets are ``SecretStr`` so they never
show up in logs or reprs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.limits import SandboxLimits


class ModelSettings(BaseModel, frozen=True):
    """The model that writes transformers: any OpenAI-compatible server. With no API key
    the offline generator writes them from the templates' hints instead."""

    api_key: SecretStr | None = None
    base_url: str | None = None
    name: str = "gpt-4.1-mini"
    timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=10)


class HealingSettings(BaseModel, frozen=True):
    """When a metric's transform keeps failing: it is retried after each gap in turn
    (seconds; 0 = at the scheduler's next pass), and once the gaps are used up its
    template's transformer is regenerated. A generation that cannot finish (its sample
    cannot be fetched, its request is lost) is tried ``generation_attempts`` times before
    it is given up with an alert."""

    retry_gaps_s: tuple[float, ...] = (0.0, 3600.0, 21600.0)
    generation_attempts: int = Field(8, ge=1)


class FetchSettings(BaseModel, frozen=True):
    """How the fetch stage treats providers (see agents/fetch_client.py)."""

    timeout_s: float = Field(20.0, gt=0)
    attempts: int = Field(3, ge=1)
    retry_timeout_s: float = Field(30.0, gt=0)
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(5.0, ge=0)
    max_inline_wait_s: float = Field(5.0, ge=0)
    accepted_retry_s: float = Field(60.0, ge=0)
    max_retries_later: int = Field(5, ge=0)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_concurrent_per_connection: int = Field(4, ge=1)


class KafkaSettings(BaseModel, frozen=True):
    """How this process talks to the broker. With a ``username`` every client authenticates
    with SASL/SCRAM-SHA-512 (``SASL_PLAINTEXT``; TLS is the deployment's to add in front).
    The group settings decide how fast a dead worker's partitions move: its session expires
    after ``session_timeout_s`` and the survivors take them over in the rebalance that
    follows (6 s is the broker's default minimum; the local cluster allows 3)."""

    username: str | None = None
    password: SecretStr | None = None

    @field_validator("username", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        """``METRICLOOM_KAFKA__USERNAME=`` (empty) means an unauthenticated client, as
        leaving it out does."""
        return value or None

    worker_username: str = "worker"
    """The principal the worker runs as (``metricloom setup`` grants it its ACLs)."""
    worker_password: SecretStr | None = None
    """Set by ``metricloom setup`` (run as the admin principal) as the worker's password."""

    group_instance_id: str | None = None
    """Static membership: a worker restarted with the same id takes its partitions back at
    once, with no rebalance (give each worker process its own, e.g. its host name)."""
    session_timeout_s: float = Field(6.0, ge=1)
    heartbeat_interval_s: float = Field(0.5, gt=0)
    rebalance_timeout_s: float = Field(20.0, gt=0)
    max_poll_interval_s: float = Field(3600.0, gt=0)
    produce_timeout_s: float = Field(30.0, gt=0)
    commit_interval_s: float = Field(1.0, gt=0)
    commit_every: int = Field(100, ge=1)


class NangoSettings(BaseModel, frozen=True):
    """The Nango proxy, for connections whose credentials Nango holds."""

    base_url: str = "https://api.nango.dev"
    secret_key: SecretStr | None = None


class Settings(BaseSettings):
    """Process configuration; see the README's Configuration section for each variable."""

    model_config = SettingsConfigDict(
        env_prefix="METRICLOOM_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    topic_partitions: int = Field(4, ge=1)
    topic_replication: int = Field(1, ge=1)
    database_url: SecretStr = SecretStr("postgresql://metricloom_app@127.0.0.1:5432/metricloom")
    database_admin_url: SecretStr | None = None
    """The schema owner, for ``metricloom migrate``/``setup`` only: with it the migrations
    run as this user and the user in ``database_url`` is made a rows-only role
    (schema/roles.py). Without it everything runs as ``database_url``'s user."""
    db_pool_size: int = Field(8, ge=1)
    scheduler_interval_s: float = Field(5.0, gt=0)
    scheduler_batch: int = Field(500, ge=1)
    stage_batch_size: int = Field(100, ge=1)
    stage_batch_window_s: float = Field(0.5, gt=0)
    stage_linger_min_s: float = Field(0.01, gt=0)
    """A stage batch waits for more events after its first one for a linger between this
    and ``stage_batch_window_s``, adapted to the load (streams/batching.py)."""
    stage_batching: Literal["adaptive", "fixed"] = "fixed"
    """``fixed`` (the default): Faust's ``noack_take``, which waits the whole window every
    time, the behaviour the fault suite has proven. ``adaptive``: streams/batching.py,
    opt-in until a point lost in one fault-suite run with it is explained (README)."""
    transformer_language: Literal["python", "typescript"] = "typescript"
    """What new metric transformers are written in (a template's ``transformer_language``
    overrides it): ``typescript``, the design's choice and the default, is type-checked by
    tsc and runs under QuickJS at about Python's cost per input; ``python`` stays
    available (README, TypeScript transformers)."""
    pause_initial_s: float = Field(0.5, gt=0)
    pause_max_s: float = Field(30.0, gt=0)
    retention_days: int | None = Field(None, ge=1)
    compress_after_days: int | None = Field(None, ge=1)
    log_level: str = "INFO"
    health_host: str = "127.0.0.1"
    health_port: int = Field(9000, ge=0, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    fetch: FetchSettings = FetchSettings()
    sandbox: SandboxLimits = SandboxLimits()
    model: ModelSettings = ModelSettings()
    healing: HealingSettings = HealingSettings()
    provider_urls: dict[str, str] = Field(default_factory=dict)
    """Base URL per provider name (``METRICLOOM_PROVIDER_URLS__GITHUB``), overriding the one
    its provider file declares; the local cluster points them at the demo API. Names are
    checked against the declared providers when the worker starts (providers/)."""
    provider_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    """The deployment's direct API token per provider name (optional), sent the way the
    provider file's ``auth`` says."""
    providers_dir: Path | None = None
    """A directory of provider files read besides the shipped ones (providers/)."""
    templates_dir: Path | None = None
    """A directory of template files read besides the shipped ones (templates/)."""
    default_token_organizations: frozenset[str] = frozenset()
    """Organisations whose metrics without a connection use ``provider_tokens`` (the
    deployment's own). Anyone else's such metrics fetch unauthenticated: otherwise any
    organisation could read whatever the deployment's token can."""
    nango: NangoSettings = NangoSettings()
    token_keys: SecretStr | None = None
    """The keys provider tokens are encrypted with at rest, ``id:base64key`` pairs separated
    by commas, the first one current (see schema/token_encryption.py). Without it, a
    connection with a token can be neither stored nor used."""

    @field_validator("token_keys", mode="before")
    @classmethod
    def _blank_keys_are_none(cls, value: object) -> object:
        """``METRICLOOM_TOKEN_KEYS=`` (empty) means no keys, as leaving it out does."""
        return value or None

    @model_validator(mode="after")
    def _linger_within_window(self) -> Self:
        if self.stage_linger_min_s > self.stage_batch_window_s:
            raise ValueError(
                "METRICLOOM_STAGE_LINGER_MIN_S must not exceed METRICLOOM_STAGE_BATCH_WINDOW_S"
            )
        return self

    @property
    def database_location(self) -> str:
        """Where the database is, for logs: host, port and name, never the password."""
        from urllib.parse import urlsplit

        url = urlsplit(self.database_url.get_secret_value())
        return f"{url.hostname}:{url.port or 5432}{url.path}"

    @property
    def app_id(self) -> str:
        """Faust application id (and Kafka consumer group), unique per topic prefix."""
        return f"{self.topic_prefix}metricloom"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
