"""The dashboard's own settings (``METRICLOOM_DASHBOARD_*``), beside the pipeline's
(:class:`streams.settings.Settings`: the broker, topic prefix and database it reads).

The pipeline settings' Kafka principal (``METRICLOOM_KAFKA__USERNAME``) is the dashboard's
own, used for the one thing no tenant may do: read the organisation's dead letters off the
shared ``dead-letter`` topic (``python -m dashboard grant`` gives it that, and nothing
else). Everything a person does goes through the Kafka clients of their session, which
authenticate as their organisation.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

WEB_DIST = Path(__file__).resolve().parent / "web" / "dist"


class DashboardSettings(BaseSettings):
    """Where the dashboard listens and how its sessions behave."""

    model_config = SettingsConfigDict(env_prefix="METRICLOOM_DASHBOARD_", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)
    session_secret: SecretStr | None = None
    """Signs the session cookie. Sessions live in the process (they hold the
    organisation's Kafka password for its clients), so a random secret per process, the
    default, loses nothing a restart does not lose anyway."""
    session_ttl_s: float = Field(12 * 3600, gt=0)
    cookie_secure: bool = False
    """Mark the cookie ``Secure`` (serve it behind TLS): off for the local cluster's
    plain-HTTP 127.0.0.1."""
    web_dir: Path = WEB_DIST
    """The built browser app (``npm run build`` in dashboard/web)."""
    command_timeout_s: float = Field(30.0, gt=0)
    """How long an action waits for the worker's answer on ``command-results.<org>``."""
