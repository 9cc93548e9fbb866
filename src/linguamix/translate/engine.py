"""The engine: chat completions of an OpenAI-compatible endpoint over httpx, with retries (exponential
backoff + jitter, `Retry-After` honoured), a rate limit, and the API key kept out of every message."""
from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError, LinguamixError
from .config import EngineConfig


class EngineError(LinguamixError):
    """One request failed for good (retries exhausted, or the server refused this example)."""


class EngineFatal(LinguamixError):
    """Every request would fail (authentication, unknown model or URL): stop the run."""


@dataclass(frozen=True)
class Reply:
    content: str | None
    usage: dict[str, int]
    finish_reason: str | None
    model: str | None


class RateLimiter:
    """Spaces request starts `60 / requests_per_minute` seconds apart."""

    def __init__(self, per_minute: float | None, sleep: Callable, clock: Callable[[], float] = time.monotonic):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.sleep, self.clock = sleep, clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + self.interval
            if start > now:
                await self.sleep(start - now)


RETRYABLE = {408, 409, 425, 429}


class Engine:
    """Chat completions over httpx with retries (exponential backoff + jitter, `Retry-After` honoured)."""

    def __init__(self, cfg: EngineConfig, api_key: str | None, *, sleep: Callable | None = None, seed: int = 0):
        self.cfg = cfg
        self._key = api_key or None
        self.sleep = sleep or asyncio.sleep
        self.rng = random.Random(seed)
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.limiter: RateLimiter | None = None
        self.client = None
        self.served_models: set[str] = set()
        self.stats = Counter()

    @classmethod
    def from_config(cls, cfg: EngineConfig, **kw) -> "Engine":
        key = None
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise ConfigError(f"environment variable {cfg.api_key_env} (engine.api_key_env) is not set; set it, "
                                  f"or set engine.api_key_env: null for a server without authentication")
        return cls(cfg, key, **kw)

    async def __aenter__(self) -> "Engine":
        import httpx

        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self.client = httpx.AsyncClient(headers=headers, timeout=self.cfg.timeout_s, trust_env=self.cfg.trust_env,
                                        limits=httpx.Limits(max_connections=self.cfg.max_concurrency))
        self.limiter = RateLimiter(self.cfg.requests_per_minute, self.sleep)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def body(self, messages: list[dict[str, str]], schema: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.cfg.model, "messages": messages, "temperature": self.cfg.temperature,
                                "max_tokens": self.cfg.max_tokens, **self.cfg.extra_body}
        mode = self.cfg.structured_output
        if mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif mode == "json_schema" and schema:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "translation", "schema": schema}}
        elif mode == "vllm" and schema:
            body["structured_outputs"] = {"json": schema}
        return body

    def _backoff(self, attempt: int) -> float:
        delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** attempt)
        return delay * (0.5 + 0.5 * self.rng.random())

    async def chat(self, messages: list[dict[str, str]], schema: dict[str, Any] | None = None) -> Reply:
        import httpx

        body = self.body(messages, schema)
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            await self.limiter.wait()
            self.stats["requests"] += 1
            delay = None
            try:
                r = await self.client.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last = f"{type(e).__name__}"
            else:
                if r.status_code == 200:
                    try:
                        return self._reply(r.json())
                    except (ValueError, KeyError, IndexError, TypeError):
                        last = "HTTP 200 with a body that is not a chat completion"
                elif r.status_code in (401, 403):
                    raise EngineFatal(f"{self.cfg.base_url}: HTTP {r.status_code} (authentication failed; check the "
                                      f"key in ${self.cfg.api_key_env})")
                elif r.status_code == 404:
                    raise EngineFatal(f"{self.cfg.base_url}: HTTP 404 for model {self.cfg.model!r} (check "
                                      f"engine.base_url and engine.model): {self._scrub(r.text[:200])}")
                elif r.status_code in RETRYABLE or r.status_code >= 500:
                    last = f"HTTP {r.status_code}"
                    delay = _retry_after(r.headers.get("retry-after"))
                else:
                    raise EngineError(f"HTTP {r.status_code}: {self._scrub(' '.join(r.text.split())[:200])}")
            self.stats[f"retry:{last.split(':')[0]}"] += 1
            if attempt == self.cfg.max_retries:
                break
            await self.sleep(delay if delay is not None else self._backoff(attempt))
        raise EngineError(f"gave up after {self.cfg.max_retries + 1} tries ({last})")

    def _reply(self, data: dict[str, Any]) -> Reply:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        if data.get("model"):
            self.served_models.add(self._scrub(str(data["model"])))
        content = choice["message"].get("content")
        # every reply is stored (cache, rejects): a server that echoes the request's headers must not
        # get the key written to disk
        return Reply(content=self._scrub(content) if isinstance(content, str) else content,
                     finish_reason=choice.get("finish_reason"), model=self._scrub(str(data["model"]))
                     if data.get("model") else None,
                     usage={k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")})


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped at 10 minutes."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 600.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), 600.0)
