"""Transformer generators: who writes the code, behind one base class.

* :class:`~agents.generators.offline.OfflineGenerator` — deterministic, from the
  template's extraction hints; used when no model key is configured.
* :class:`~agents.generators.openai_compatible.OpenAICompatibleGenerator` — any
  OpenAI-compatible server (base URL, model, key), code returned through structured output.

Both only *propose* code: ``agents.codegen`` validates every proposal (static checks, a
sandbox run on a real sample, the pydantic models) before anything is saved.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from sandbox.protocol import Language
from schema.models import MetricTemplate
from streams.settings import ModelSettings


@dataclass(frozen=True)
class MetricCodeTask:
    """Everything a generator may use to write a template's MetricTransformer."""

    template: MetricTemplate
    sample: Any
    endpoint_config: dict[str, Any]
    previous_code: str | None = None
    feedback: list[str] = field(default_factory=list)
    language: Language = "python"
    """What to write the transformer in: ``python`` or ``typescript``."""


@dataclass(frozen=True)
class ChartCodeTask:
    """Everything a generator may use to write one dashboard metric's ChartTransformer."""

    title: str
    chart_type: str
    aggregation: str
    date_range_days: int | None
    """None: all time."""
    granularity: str
    sample: list[dict[str, Any]]
    current_code: str | None = None
    user_prompt: str | None = None
    feedback: list[str] = field(default_factory=list)
    series: tuple[str, ...] = ()
    """The dimensions to draw as series besides value (preferences.series_dimensions)."""
    language: Language = "python"
    """What to write the transformer in: ``python`` or ``typescript``."""


@dataclass(frozen=True)
class Proposal:
    code: str
    model_calls: int
    notes: str = ""


class Generator(ABC):
    name: str

    @abstractmethod
    async def metric_code(self, task: MetricCodeTask) -> Proposal:
        """Propose ``transform(api_response, endpoint_config) -> list[DataPoint]``."""

    @abstractmethod
    async def chart_code(self, task: ChartCodeTask) -> Proposal:
        """Propose ``transform(data_points, preferences) -> ChartConfig``."""

    async def close(self) -> None:  # noqa: B027 - a hook with a do-nothing default
        """Release connections (nothing to release by default)."""


def generator_for(settings: ModelSettings) -> Generator:
    """The model-backed generator when a key is configured, the offline one otherwise."""
    if settings.api_key is None:
        from agents.generators.offline import OfflineGenerator

        return OfflineGenerator()
    from agents.generators.openai_compatible import OpenAICompatibleGenerator

    return OpenAICompatibleGenerator(settings)
