"""A local OpenAI-compatible chat-completions server with scripted replies.

A real HTTP server (aiohttp) on 127.0.0.1 that answers ``POST /v1/chat/completions`` with
the next scripted reply and records every request, so tests can drive the repair loop
through the real openai SDK and read back the prompts it sent.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web


class ScriptedModel:
    def __init__(self) -> None:
        self.replies: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def script(self, *codes: str, raw: bool = False) -> None:
        """Queue replies: each is a module of code (wrapped as {"code": ...}) or, with
        ``raw``, the literal message content."""
        self.replies = [c if raw else json.dumps({"code": c}) for c in codes]
        self.requests.clear()

    async def _complete(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if not self.replies:
            return web.json_response({"error": {"message": "no scripted reply left"}}, status=500)
        content = self.replies.pop(0)
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "scripted"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
