"""The root of metricloom's exceptions and the shared branches.

::

    MetricloomError
    ├── ServiceUnavailableError      a service the pipeline needs is away: retried, never
    │   │                            dead-lettered (the stage pauses until it is back)
    │   ├── DatabaseUnavailableError TimescaleDB cannot be reached or dropped the connection
    │   ├── KafkaUnavailableError    the broker cannot be reached or refused a produce
    │   ├── SandboxUnavailableError  (sandbox/exceptions.py) the engine or runner is away
    │   └── ModelUnavailableError    (agents/generators) the model server is away
    ├── InvalidDataError             the database refused a value (NUL in text, out of range)
    ├── NotFoundError                a metric, template or dashboard metric id that is not there
    ├── ForeignIdError               a pipeline record names an id of another organisation
    │                                than the one it names: refused (dead-lettered) whole
    └── (sandbox, agents: see their exceptions modules)
"""


class MetricloomError(Exception):
    """Root of every error metricloom raises on purpose."""


class ServiceUnavailableError(MetricloomError):
    """A service is away; the same work may succeed once it is back."""


class DatabaseUnavailableError(ServiceUnavailableError):
    """TimescaleDB cannot be reached; the operation may succeed later."""


class KafkaUnavailableError(ServiceUnavailableError):
    """The Kafka cluster cannot be reached, or did not acknowledge a record in time."""


class NotFoundError(MetricloomError):
    """An id named by a message or command does not exist (for that organisation)."""


class ForeignIdError(MetricloomError):
    """A pipeline record names a metric or dashboard metric that belongs to another
    organisation than the one the record names: the record is forged or corrupt. It is
    refused before anything changes, and the pipeline dead-letters it (alone)."""


class InvalidDataError(MetricloomError):
    """The database refused a value of one record: that record's fault, not an outage."""
