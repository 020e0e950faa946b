"""Sandbox errors. A failure of the transformer code is never raised: it is a
:class:`~sandbox.executor.SandboxError` in that input's result. These are for the
infrastructure::

    MetricloomError
    ├── ServiceUnavailableError
    │   └── SandboxUnavailableError   engine or runner unreachable, image missing, API failure
    │       └── SandboxHardeningError a container failed the harness's own hardening check
    └── SandboxRunnerError            the runner refused a request or answered out of protocol
"""

from schema.exceptions import MetricloomError, ServiceUnavailableError


class SandboxUnavailableError(ServiceUnavailableError):
    """The Docker engine or the sandbox image cannot run the batch; retry later."""


class SandboxHardeningError(SandboxUnavailableError):
    """A sandbox container is not hardened as the harness requires (writable paths, IPC
    open, dumpable, capabilities): nothing runs in it until the deployment is fixed."""


class SandboxRunnerError(MetricloomError):
    """The sandbox runner refused the request (HTTP 4xx) or answered what the protocol does
    not allow: a bug on one side, not an outage."""
