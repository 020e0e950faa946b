"""The contract between the stages and a sandbox, local or behind the sandbox runner.

* :class:`SandboxResult` / :class:`SandboxError`: the outcome of one input. A failure of
  the code is data here, never an exception.
* :class:`Sandbox`: what a stage calls. :class:`~sandbox.executor.SandboxExecutor` runs
  the containers itself (it needs the Docker engine); :class:`~sandbox.client.
  SandboxRunnerClient` asks the sandbox runner to (the worker then holds no Docker socket).
* :class:`RunRequest` / :class:`RunResponse`: the runner's one operation on the wire,
  ``POST /v1/run``. The request names nothing but the code, its entry point, the inputs
  and their tenants: image, runtime and limits are the runner's own settings, and a
  request with any other field is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

RUN_PATH = "/v1/run"
Language = Literal["python", "javascript", "typescript"]
"""What the code is written in: Python, or JavaScript (QuickJS runs it). ``typescript``
runs nothing: it type-checks and compiles the code (its entry names the signature,
``MetricTransform`` or ``ChartTransform``), and each input's value is
``{"javascript": ... | null, "diagnostics": [...]}``."""
DEFAULT_RUNNER_SOCKET = "/run/metricloom/sandbox.sock"

ErrorKind = Literal[
    "syntax_error",
    "load",
    "missing_entry",
    "exception",
    "timeout",
    "memory",
    "output_too_large",
    "not_serialisable",
    "malformed_output",
    "killed",
    "crashed",
    "batch_timeout",
    "input_not_serialisable",
    "harness",
]


class SandboxError(BaseModel, frozen=True):
    """Why one input produced no value; ``kind`` is stable, ``message`` is for people."""

    kind: ErrorKind
    message: str
    traceback: str | None = None


class SandboxResult(BaseModel, frozen=True):
    """The outcome of one input: a JSON value, or an error. ``prints`` is the start of
    what the code printed, kept for debugging generated code."""

    value: Any = None
    error: SandboxError | None = None
    prints: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def check_tenants(inputs: Sequence[Sequence[Any]], tenants: Sequence[str] | None) -> None:
    """A batch's tenants, when given, name one organisation per input."""
    if tenants is not None and len(tenants) != len(inputs):
        raise ValueError(f"{len(tenants)} tenants for {len(inputs)} inputs")


class Sandbox(Protocol):
    """Runs ``entry(*args)`` from ``code`` once per input; ``tenants[i]`` is the
    organisation input ``i`` belongs to (tenants never share a container)."""

    async def run(
        self,
        code: str,
        entry: str,
        inputs: Sequence[Sequence[Any]],
        tenants: Sequence[str] | None = None,
        language: Language = "python",
    ) -> list[SandboxResult]: ...

    async def aclose(self) -> None: ...


def json_default(obj: object) -> str:
    """How inputs that are not JSON (dates) are sent to the code: ISO text."""
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def encode_input(args: Sequence[Any]) -> bytes:
    """One input's arguments as JSON; TypeError/ValueError if they cannot be."""
    return json.dumps(list(args), default=json_default, allow_nan=False).encode()


class RunRequest(BaseModel):
    """The runner's one operation: this code, over these inputs. Nothing else can be
    named (``extra="forbid"``): no image, mount, privilege, runtime or limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(min_length=1, max_length=1_000_000)
    entry: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
    inputs: list[list[Any]] = Field(max_length=100_000)
    tenants: list[str] | None = None
    language: Language = "python"

    @model_validator(mode="after")
    def _one_tenant_per_input(self) -> RunRequest:
        if self.tenants is not None and len(self.tenants) != len(self.inputs):
            raise ValueError(f"{len(self.tenants)} tenants for {len(self.inputs)} inputs")
        return self


class RunResponse(BaseModel):
    """One result per input of the request, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    results: list[SandboxResult]


class RunnerFailure(BaseModel):
    """The runner's answer when it could not run the batch (HTTP 503): ``hardening`` (a
    container failed the harness's check) or ``unavailable`` (the engine is away)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error: Literal["hardening", "unavailable"]
    message: str
