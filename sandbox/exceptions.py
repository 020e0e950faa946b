"""Sandbox errors. A failure of the transformer code is never raised: it is a
:class:`~sandbox.executor.SandboxError` in that input's result. These are for the
infrastructure::

    MetricloomError
    └── ServiceUnavailableError
        └── SandboxUnavailableError   engine unreachable, image missing, container API failure
"""

from schema.exceptions import ServiceUnavailableError


class SandboxUnavailableError(ServiceUnavailableError):
    """The Docker engine or the sandbox image cannot run the batch; retry later."""
