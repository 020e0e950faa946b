"""How a model can fail, without importing the model's SDK (the worker imports these on
every start; the ``openai`` package only when a model is configured)::

    MetricloomError
    ├── ServiceUnavailableError
    │   └── ModelUnavailableError   unreachable, timed out, 5xx, 429: the stage pauses
    ├── ModelRefusedError           401, 403, 404, 400: a setting to fix, not an outage
    └── ModelAnswerError            it answered, but not with {"code": "..."}
"""

from schema.exceptions import MetricloomError, ServiceUnavailableError


class ModelUnavailableError(ServiceUnavailableError):
    """The model server could not be reached, timed out, or answered 5xx or 429."""


class ModelRefusedError(MetricloomError):
    """The model server refused the request for good (401, 403, 404, 400): a setting to
    fix (key, model name, base URL), not an outage to wait out."""


class ModelAnswerError(MetricloomError):
    """The model answered, but not with ``{"code": "..."}``."""
