"""The executor's reaper: a used container's removal runs off the batch's path, bounded,
and close() waits for it. A stand-in container whose removal blocks until the test lets
it go: the ordering under test is the executor's, not the engine's (the engine's side is
in tests/integration/test_sandbox_lifecycle.py)."""

from __future__ import annotations

import threading

import docker.errors
import requests

from sandbox.executor import SandboxExecutor, _reap
from sandbox.limits import SandboxLimits
from sandbox.warm_pool import Launched


class HeldContainer:
    """Its removal waits for ``release``."""

    name = "held"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.removed = threading.Event()

    def remove(self, force: bool, v: bool) -> None:
        assert self.release.wait(10), "never released"
        self.removed.set()


def retire(executor: SandboxExecutor, container: HeldContainer) -> None:
    executor._retire(Launched(container, None, 0.0))


def test_a_batch_does_not_wait_for_its_containers_removal_but_close_does() -> None:
    executor = SandboxExecutor(SandboxLimits(max_concurrent=2))
    held = HeldContainer()
    retire(executor, held)  # returns while the removal is held
    assert not held.removed.is_set()
    closing = threading.Thread(target=executor.close)
    closing.start()
    closing.join(0.5)
    assert closing.is_alive(), "close() returned before the removal finished"
    held.release.set()
    closing.join(10)
    assert not closing.is_alive() and held.removed.is_set()


def test_removals_past_max_concurrent_hold_the_next_batch() -> None:
    """At most max_concurrent removals are outstanding: the next retire waits for one,
    so used containers cannot pile up behind a slow engine."""
    executor = SandboxExecutor(SandboxLimits(max_concurrent=1))
    first, second = HeldContainer(), HeldContainer()
    retire(executor, first)
    waiting = threading.Thread(target=retire, args=(executor, second))
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive(), "a second removal was queued past the bound"
    first.release.set()
    waiting.join(10)
    assert not waiting.is_alive()
    second.release.set()
    executor.close()
    assert first.removed.is_set() and second.removed.is_set()


class RemovingAlready:
    """The engine's auto_remove is at it: the forced removal answers 409."""

    name = "removing"

    def __init__(self) -> None:
        self.waited_for: list[str] = []

    def remove(self, force: bool, v: bool) -> None:
        response = requests.Response()
        response.status_code = 409
        raise docker.errors.APIError("removal already in progress", response=response)

    def wait(self, condition: str, timeout: int) -> None:
        self.waited_for.append(condition)


def test_a_reap_that_meets_auto_remove_waits_until_the_container_is_gone() -> None:
    container = RemovingAlready()
    _reap(container)
    assert container.waited_for == ["removed"]
