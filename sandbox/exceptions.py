"""Sandbox errors. A failure of the transformer code is never raised: it is a
:class:`~sandbox.executor.SandboxError` in that input's result. These are for the
infrastructure::

    MetricloomError
    └── ServiceUnavailableError
        └── SandboxUnavailableError   engine or runner unreachable, image missing, API failure
            └── SandboxHardeningError a container failed the harness's own hardening check
"""

from schema.exceptions import ServiceUnavailableError


class SandboxUnavailableError(ServiceUnavailableError):
    """The Docker engine or the sandbox image cannot run the batch; retry later."""


class SandboxHardeningError(SandboxUnavailableError):
    """A sandbox container is not hardened as the harness requires (writable paths, IPC
    open, dumpable, capabilities): nothing runs in it until the deployment is fixed."""
