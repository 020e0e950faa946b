"""The root of metricloom's exceptions and the storage layer's own.

::

    MetricloomError
    ├── DatabaseUnavailableError   TimescaleDB cannot be reached or dropped the connection
    ├── NotFoundError              a metric, template or dashboard metric id that is not there
    └── (sandbox, agents: see their exceptions modules)
"""


class MetricloomError(Exception):
    """Root of every error metricloom raises on purpose."""


class DatabaseUnavailableError(MetricloomError):
    """TimescaleDB cannot be reached; the operation may succeed later."""


class NotFoundError(MetricloomError):
    """An id named by a message or command does not exist (for that organisation)."""
