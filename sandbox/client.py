"""The worker's side of the sandbox runner: the :class:`~sandbox.protocol.Sandbox`
interface over the runner's Unix socket (the worker then needs no Docker socket).

Same results and errors as the local executor: one :class:`~sandbox.protocol.
SandboxResult` per input; an input that cannot be encoded is ``input_not_serialisable``
without being sent; a runner that cannot be reached, times out or reports the engine away
raises :class:`~sandbox.exceptions.SandboxUnavailableError` (the stage pauses and tries
again), a container that failed the harness's check :class:`~sandbox.exceptions.
SandboxHardeningError`; a refusal or an answer out of protocol raises
:class:`~sandbox.exceptions.SandboxRunnerError` (a bug, not an outage).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import ValidationError

from sandbox.exceptions import SandboxHardeningError, SandboxRunnerError, SandboxUnavailableError
from sandbox.limits import SandboxLimits
from sandbox.protocol import (
    RUN_PATH,
    Language,
    RunnerFailure,
    RunResponse,
    SandboxError,
    SandboxResult,
    check_tenants,
    encode_input,
)

QUEUE_SLACK_S = 30.0
"""Time a batch may wait for a free container at the runner, on top of its own limit."""


class SandboxRunnerClient:
    """Sends batches to the sandbox runner at ``limits.runner_socket``."""

    def __init__(self, limits: SandboxLimits) -> None:
        if not limits.runner_socket:
            raise ValueError("SandboxRunnerClient needs limits.runner_socket")
        self.limits = limits
        self.socket = limits.runner_socket
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=self.socket),
                base_url="http://sandbox-runner",
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def run(
        self,
        code: str,
        entry: str,
        inputs: Sequence[Sequence[Any]],
        tenants: Sequence[str] | None = None,
        language: Language = "python",
    ) -> list[SandboxResult]:
        """Run ``entry(*args)`` from ``code`` once per input, at the runner."""
        check_tenants(inputs, tenants)
        results: dict[int, SandboxResult] = {}
        encoded: dict[int, bytes] = {}
        for index, args in enumerate(inputs):
            try:
                encoded[index] = encode_input(args)
            except (TypeError, ValueError) as exc:
                results[index] = SandboxResult(
                    error=SandboxError(kind="input_not_serialisable", message=str(exc))
                )
        sent = sorted(encoded)
        if sent:
            body = b'{"code": %s, "entry": %s, "language": %s, "inputs": [%s], "tenants": %s}' % (
                json.dumps(code).encode(),
                json.dumps(entry).encode(),
                json.dumps(language).encode(),
                b", ".join(encoded[i] for i in sent),
                json.dumps([tenants[i] for i in sent] if tenants is not None else None).encode(),
            )
            groups = len(set(tenants[i] for i in sent)) if tenants is not None else 1
            answered = await self._post(body, groups)
            if len(answered) != len(sent):
                raise SandboxRunnerError(
                    f"the sandbox runner answered {len(answered)} results for {len(sent)} inputs"
                )
            results.update(zip(sent, answered, strict=True))
        return [results[i] for i in range(len(inputs))]

    async def _post(self, body: bytes, groups: int) -> list[SandboxResult]:
        limits = self.limits
        timeout = httpx.Timeout(
            limits.connect_timeout_s, read=groups * (limits.batch_timeout_s + QUEUE_SLACK_S)
        )
        try:
            response = await self.http.post(
                RUN_PATH,
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise SandboxUnavailableError(
                f"the sandbox runner at {self.socket} is unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code == 503:
            try:
                failure = RunnerFailure.model_validate_json(response.content)
            except ValidationError as exc:
                raise SandboxUnavailableError(f"the sandbox runner answered 503: {exc}") from exc
            if failure.error == "hardening":
                raise SandboxHardeningError(failure.message)
            raise SandboxUnavailableError(failure.message)
        if response.status_code != 200:
            raise SandboxRunnerError(
                f"the sandbox runner refused the batch ({response.status_code}):"
                f" {response.text.strip()[:500]}"
            )
        try:
            return RunResponse.model_validate_json(response.content).results
        except ValidationError as exc:
            raise SandboxRunnerError(f"the sandbox runner's answer is malformed: {exc}") from exc
