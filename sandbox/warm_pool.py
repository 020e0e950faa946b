"""Sandbox containers started ahead of need, so a batch does not wait for one to start.

Starting a container (create, attach, start, the harness's interpreter) costs about
0.3-0.5 s under runc and over a second under gVisor, and the transform and chart stages
each paid it on a refreshed metric's critical path. The pool keeps ``size`` containers
created, attached and started in the background; each holds nothing but the harness,
blocked reading its first byte of stdin (the header with the code comes only with a batch),
so nothing has run in it. A batch takes one, uses it for exactly that batch, and it is then
removed as before: throwaway, never reused, one organisation per container.

Bounds: at most ``size`` waiting; one older than ``max_age_s`` is removed and replaced
(its deadline label covers that age, so a sweep removes a stray one like any other); a
container of a process that dies goes away with the process (its stdin closes, the harness
exits, ``auto_remove``). An engine that is away leaves the pool empty (the batch then
starts its own container and reports the outage as before) and the refill retries with
capped backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from sandbox.exceptions import SandboxUnavailableError

log = structlog.get_logger(__name__)

RETRY_MAX_S = 30.0


@dataclass
class Launched:
    """A started sandbox container and the attach socket that is its stdin and stdout."""

    container: Any
    sock: Any
    started_at: float
    """``time.monotonic()`` when it was started."""


class WarmPool:
    """Keeps up to ``size`` started containers from ``launch`` ready for :meth:`take`."""

    def __init__(
        self,
        launch: Callable[[], Launched],
        discard: Callable[[Launched], None],
        size: int,
        max_age_s: float,
    ) -> None:
        self._launch = launch
        self._discard = discard
        self.size = size
        self.max_age_s = max_age_s
        self._ready: list[Launched] = []
        self._changed = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def take(self) -> Launched | None:
        """A started container younger than the age bound, or None (the caller starts
        its own). Starts the refill thread on first use."""
        stale: list[Launched] = []
        taken: Launched | None = None
        with self._changed:
            if self._closed:
                return None
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._fill, name="sandbox-warm-pool", daemon=True
                )
                self._thread.start()
            while self._ready:
                candidate = self._ready.pop(0)
                if self._fresh(candidate):
                    taken = candidate
                    break
                stale.append(candidate)
            self._changed.notify_all()
        for launched in stale:
            self._discard(launched)
        return taken

    def waiting_ids(self) -> set[str]:
        """The ids of the containers waiting now (none has run anything)."""
        with self._changed:
            return {launched.container.id for launched in self._ready}

    def close(self) -> None:
        """Stop refilling and remove the containers still waiting."""
        with self._changed:
            self._closed = True
            waiting, self._ready = self._ready, []
            self._changed.notify_all()
        for launched in waiting:
            self._discard(launched)

    def _fresh(self, launched: Launched) -> bool:
        return time.monotonic() - launched.started_at < self.max_age_s

    def _fill(self) -> None:
        """The refill loop: start containers while fewer than ``size`` wait, retire those
        past the age bound, back off while the engine is away."""
        backoff = 1.0
        while True:
            stale: list[Launched] = []
            with self._changed:
                while not self._closed:
                    stale += [w for w in self._ready if not self._fresh(w)]
                    self._ready = [w for w in self._ready if self._fresh(w)]
                    short = len(self._ready) < self.size
                    if stale or short:
                        break
                    oldest = min(w.started_at for w in self._ready)
                    self._changed.wait(timeout=oldest + self.max_age_s - time.monotonic())
                if self._closed:
                    return
            for launched in stale:
                self._discard(launched)
            if not short:
                continue
            try:
                launched = self._launch()
            except SandboxUnavailableError as exc:
                log.warning("sandbox.warm_pool_refill_failed", error=str(exc), retry_in_s=backoff)
                with self._changed:
                    self._changed.wait(timeout=backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
                continue
            backoff = 1.0
            with self._changed:
                if not self._closed:
                    self._ready.append(launched)
                    continue
            self._discard(launched)
            return
