"""A model behind any OpenAI-compatible chat-completions API (openai SDK): configurable
base URL, model and key. Code comes back through structured output (a JSON schema with a
single ``code`` field); transport errors become :class:`ModelUnavailableError`."""

from __future__ import annotations

import json

import openai
from pydantic import BaseModel, ValidationError

from agents.generators import ChartCodeTask, Generator, MetricCodeTask, Proposal
from agents.generators.exceptions import ModelAnswerError, ModelRefusedError, ModelUnavailableError
from agents.generators.prompts import CODE_SCHEMA, chart_messages, metric_messages
from streams.settings import ModelSettings


class _Answer(BaseModel):
    code: str


class OpenAICompatibleGenerator(Generator):
    def __init__(self, settings: ModelSettings) -> None:
        assert settings.api_key is not None
        self.name = f"model:{settings.name}"
        self._model = settings.name
        self._client = openai.AsyncOpenAI(
            api_key=settings.api_key.get_secret_value(),
            base_url=settings.base_url,
            timeout=settings.timeout_s,
            max_retries=2,
        )

    async def _ask(self, messages: list[dict[str, str]]) -> Proposal:
        try:
            response = await self._client.chat.completions.create(  # type: ignore[call-overload]
                model=self._model,
                messages=messages,
                response_format={"type": "json_schema", "json_schema": CODE_SCHEMA},
                temperature=0,
            )
        except openai.APIStatusError as exc:
            if exc.status_code == 429 or exc.status_code >= 500:
                raise ModelUnavailableError(f"model {self._model}: {exc}") from exc
            raise ModelRefusedError(
                f"model {self._model} refused the request (HTTP {exc.status_code}):"
                " check METRICLOOM_MODEL__API_KEY, __NAME and __BASE_URL"
            ) from exc
        except openai.APIError as exc:  # connection errors and timeouts
            raise ModelUnavailableError(f"model {self._model}: {exc}") from exc
        content = response.choices[0].message.content if response.choices else None
        try:
            answer = _Answer.model_validate(json.loads(content or ""))
        except (ValueError, ValidationError) as exc:
            raise ModelAnswerError(f"model answer is not {{'code': ...}}: {exc}") from exc
        return Proposal(code=answer.code, model_calls=1)

    async def close(self) -> None:
        await self._client.close()

    async def metric_code(self, task: MetricCodeTask) -> Proposal:
        return await self._ask(metric_messages(task))

    async def chart_code(self, task: ChartCodeTask) -> Proposal:
        return await self._ask(chart_messages(task))
