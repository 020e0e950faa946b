"""The dashboard's errors (one root, under metricloom's).

DashboardError
├── LoginRefusedError      the broker did not accept the organisation's credentials
├── NotConfiguredError     an operation needs a setting this deployment lacks
└── CommandRefusedError    a command body the dashboard will not send (one line why)
"""

from __future__ import annotations

from schema.exceptions import MetricloomError


class DashboardError(MetricloomError):
    """Root of the dashboard's errors."""


class LoginRefusedError(DashboardError):
    """The organisation id or its password was not accepted by the broker."""


class NotConfiguredError(DashboardError):
    """The deployment lacks a setting this operation needs (named in the message)."""


class CommandRefusedError(DashboardError):
    """A command body that is not a valid command of the session's organisation."""
