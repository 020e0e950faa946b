"""The sandbox's settings: what a sandbox container may use and how it is run.

This is the sandbox package's own model (it imports nothing of the pipeline): the worker's
settings (``streams/settings.py``) embed it as ``sandbox``, and the sandbox runner reads it
on its own (``METRICLOOM_SANDBOX__*``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Runtime = Literal["runc", "runsc"]
ProcessPer = Literal["input", "batch"]


class SandboxLimits(BaseModel, frozen=True):
    """Resource limits and the runtime of one throwaway transformer container (see
    sandbox/executor.py)."""

    image: str = "metricloom/sandbox"
    runtime: Runtime = "runsc"
    """The OCI runtime of the sandbox containers: ``runsc`` (gVisor: the code talks to a
    user-space kernel, not the host's; registered by scripts/host-setup.sh) or ``runc``
    (namespaces and seccomp on the host's kernel)."""
    process_per: ProcessPer | None = None
    """``input``: a fresh process per input; ``batch``: one fresh process per batch (one
    organisation), each input in fresh module globals. Default: ``input`` under runc,
    ``batch`` under runsc, where a process start costs about 40 ms."""
    memory_mb: int = Field(256, ge=32)
    cpus: float = Field(1.0, gt=0)
    pids: int = Field(64, ge=8)
    batch_timeout_s: float = Field(60.0, gt=0)
    input_timeout_s: float = Field(5.0, gt=0)
    output_limit_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    batch_output_limit_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    """What one batch may return in all (results and prints together)."""
    print_limit_bytes: int = Field(1024 * 1024, ge=1024)
    input_memory_mb: int = Field(128, ge=16)
    max_concurrent: int = Field(2, ge=1)
    warm_pool: int = Field(0, ge=0)
    """Containers kept started ahead of need (sandbox/warm_pool.py), each still used for
    one batch only; 0 (the default until it is measured under load: its refills compete
    with running batches for the CPU): every batch starts its own."""
    warm_max_age_s: float = Field(60.0, gt=0)
    """A waiting container older than this is removed and replaced."""
    connect_timeout_s: float = Field(10.0, gt=0)
    docker_url: str | None = None
    """The Docker engine's API (``unix:///var/run/docker.sock`` style); default: the
    environment's (``DOCKER_HOST``, else the local socket)."""
    runner_socket: str | None = None
    """The sandbox runner's Unix socket. Set: the worker sends its batches there and needs
    no Docker engine; unset: the worker runs the containers itself."""

    @property
    def fresh_process(self) -> ProcessPer:
        """The isolation unit inside one container, with the runtime's default applied."""
        if self.process_per is not None:
            return self.process_per
        return "batch" if self.runtime == "runsc" else "input"
