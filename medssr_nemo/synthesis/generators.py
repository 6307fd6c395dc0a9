"""Text generators the ``llm`` synthesizer can drive: any OpenAI-compatible chat endpoint over
HTTP, or any of our rollout engines (``RolloutEngine``) with the model's chat template.

A generator takes chat conversations and per-prompt seeds and returns, for each prompt, either
the generated text or the reason there is none: a failed request never raises, it becomes a
counted, explained drop.
"""

from __future__ import annotations

import abc
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from medssr_nemo.rollout.interfaces import SamplingParams

Messages = list[dict[str, str]]
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class Generation:
    text: str | None = None
    error: str | None = None            # short, countable reason when ``text`` is None
    detail: str = ""


class Generator(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def generate(self, conversations: Sequence[Messages], seeds: Sequence[int]) -> list[Generation]:
        """One result per conversation, in order."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class RateLimiter:
    """At most ``per_second`` request starts per second across threads (0 = unlimited)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self.sleep(start - now)


class HTTPChatGenerator(Generator):
    """``POST {base_url}/chat/completions`` (OpenAI layout). Retries 429/5xx/timeouts/connection
    errors with exponential backoff (``Retry-After`` wins when the server sends it); a 4xx other
    than 408/409/425/429 or a response without ``choices[0].message.content`` is not retried."""

    name = "http"

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 60.0,
                 max_retries: int = 4, backoff_s: float = 1.0, max_requests_per_s: float = 0.0,
                 temperature: float = 0.7, top_p: float = 0.95, max_new_tokens: int = 768,
                 concurrency: int = 8, sleep: Callable[[float], None] = time.sleep,
                 extra_body: dict[str, Any] | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"synthesis.generator.base_url={base_url!r} must start with http:// or https://")
        if not model:
            raise ValueError("synthesis.generator.model is empty: name the model the endpoint serves")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.concurrency = max(1, concurrency)
        self.limiter = RateLimiter(max_requests_per_s, sleep=sleep)
        self.sleep = sleep
        self.retries = 0                # total retries made (visible in the run card)
        # merged into every request body, e.g. {"chat_template_kwargs": {"enable_thinking": False}}
        self.extra_body = dict(extra_body or {})

    @classmethod
    def from_config(cls, gen_cfg: Any) -> "HTTPChatGenerator":
        return cls(gen_cfg.base_url, gen_cfg.model, gen_cfg.api_key_env, gen_cfg.timeout_s, gen_cfg.max_retries,
                   gen_cfg.backoff_s, gen_cfg.max_requests_per_s, gen_cfg.temperature, gen_cfg.top_p,
                   gen_cfg.max_new_tokens, gen_cfg.batch_size, extra_body=_plain(gen_cfg.extra_body))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "model": self.model, "retries": self.retries}

    def generate(self, conversations: Sequence[Messages], seeds: Sequence[int]) -> list[Generation]:
        if self.concurrency == 1 or len(conversations) == 1:
            return [self._one(c, s) for c, s in zip(conversations, seeds)]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(self._one, conversations, seeds))

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _one(self, messages: Messages, seed: int) -> Generation:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature,
                           "top_p": self.top_p, "max_tokens": self.max_new_tokens, "seed": int(seed),
                           **self.extra_body}).encode()
        last = Generation(error="no attempt made")
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries += 1
            self.limiter.wait()
            request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
            retry_after = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    payload = response.read()
                return _parse_chat_response(payload)
            except urllib.error.HTTPError as err:
                detail = err.read()[:200].decode("utf-8", "replace")
                last = Generation(error=f"http {err.code}", detail=detail)
                if err.code not in RETRYABLE_STATUS:
                    return last
                retry_after = _retry_after(err.headers.get("Retry-After"))
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                reason = getattr(err, "reason", err)
                kind = "timeout" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else "connection error"
                last = Generation(error=kind, detail=str(reason)[:200])
            if attempt < self.max_retries:
                self.sleep(retry_after if retry_after is not None else self.backoff_s * (2 ** attempt))
        last.detail = f"after {self.max_retries + 1} tries: {last.detail}"
        return last


def _plain(value: Any) -> dict[str, Any]:
    """A config mapping (possibly an OmegaConf node) as plain JSON-ready data."""
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(value):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:
        pass
    return dict(value or {})


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None   # an HTTP date: fall back to our own backoff


def _parse_chat_response(payload: bytes) -> Generation:
    try:
        data = json.loads(payload)
        content = data["choices"][0]["message"]["content"]
    except (json.JSONDecodeError, UnicodeDecodeError):
        return Generation(error="malformed response", detail=f"not JSON: {payload[:120]!r}")
    except (KeyError, IndexError, TypeError):
        return Generation(error="malformed response", detail=f"no choices[0].message.content: {payload[:120]!r}")
    if not isinstance(content, str):
        return Generation(error="malformed response", detail=f"content is {type(content).__name__}, not text")
    return Generation(text=content)


class EngineGenerator(Generator):
    """Generates with one of our rollout engines: the chat template renders each conversation,
    ``seeds[i]`` alone decides sample i (the engine contract)."""

    name = "rollout_engine"

    def __init__(self, engine: Any, tokenizer: Any, temperature: float = 0.7, top_p: float = 0.95,
                 max_new_tokens: int = 768, batch_size: int = 8, max_prompt_tokens: int | None = None) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the rollout-engine generator needs a tokenizer with a chat template")
        self.engine, self.tokenizer = engine, tokenizer
        self.sampling = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
        self.batch_size = batch_size
        self.max_prompt_tokens = max_prompt_tokens

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "engine": type(self.engine).__name__,
                "model": getattr(self.tokenizer, "name_or_path", "")}

    def generate(self, conversations: Sequence[Messages], seeds: Sequence[int]) -> list[Generation]:
        prompts, results = [], [Generation() for _ in conversations]
        for i, messages in enumerate(conversations):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if self.max_prompt_tokens and len(ids) > self.max_prompt_tokens:
                results[i] = Generation(error="prompt too long",
                                        detail=f"{len(ids)} tokens > {self.max_prompt_tokens}")
                continue
            prompts.append((i, ids))
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start:start + self.batch_size]
            try:
                completions = self.engine.generate([ids for _, ids in batch], self.sampling,
                                                   [int(seeds[i]) % (2 ** 31) for i, _ in batch])
            except (RuntimeError, ValueError) as err:
                for i, _ in batch:
                    results[i] = Generation(error="engine error", detail=str(err)[:200])
                continue
            for (i, _), completion in zip(batch, completions):
                results[i] = Generation(text=completion.text)
        return results
