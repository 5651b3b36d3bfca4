"""Judges: an OpenAI-compatible chat-completions endpoint or a local transformers model, behind
one call, `complete(conversations, on_reply)`, plus the disk cache both share.

`on_reply` fires as each reply arrives, so the caller can cache it at once: an interrupted run
keeps every verdict it paid for.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from rich.progress import Progress

from lima_recipes.errors import ConfigError, JudgeError
from lima_recipes.io import write_atomically

OnReply = Callable[[int, str], None]


class ReplyCache:
    """One small JSON file per reply, named by the hash of everything that decides the reply."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def key(prompt_version: str, judge_model: str, messages: list[dict], settings: dict, attempt: int) -> str:
        blob = json.dumps([prompt_version, judge_model, messages, settings, attempt], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())["reply"]
        except (json.JSONDecodeError, KeyError):
            return None  # a damaged entry is asked again, not trusted

    def put(self, key: str, reply: str, **meta) -> None:
        write_atomically(self._path(key), json.dumps({"reply": reply, **meta}, ensure_ascii=False))


def _progress(total: int, label: str):
    progress = Progress(transient=True, disable=not sys.stderr.isatty())
    return progress, progress.add_task(label, total=total)


class OpenAIJudge:
    """Requests run concurrently, at most `concurrency` in flight; the official client retries
    429, 5xx, timeouts and dropped connections with exponential backoff (or the server's
    Retry-After) before an error reaches us."""

    def __init__(self, cfg):
        key_var = cfg.api_key_env
        self.api_key = os.environ.get(key_var)
        if not self.api_key:
            raise ConfigError(f"judge=openai needs an API key: set {key_var} (a local server that does not check keys "
                              f"accepts any value), or name the variable that holds it with judge.api_key_env")
        if not cfg.model:
            raise ConfigError("judge.model is not set: the model name the server serves, e.g. judge.model=gpt-4o")
        self.model = cfg.model
        self.base_url = cfg.base_url or "https://api.openai.com/v1"
        self.concurrency = max(1, cfg.concurrency)
        self.max_retries = cfg.max_retries
        self.timeout_s = cfg.timeout_s
        self.settings = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}

    def complete(self, conversations: list[list[dict]], on_reply: OnReply) -> None:
        if conversations:
            asyncio.run(self._complete_all(conversations, on_reply))

    async def _complete_all(self, conversations: list[list[dict]], on_reply: OnReply) -> None:
        import openai

        client = openai.AsyncOpenAI(api_key=self.api_key, base_url=self.base_url,
                                    max_retries=self.max_retries, timeout=self.timeout_s)
        pool = asyncio.Semaphore(self.concurrency)
        progress, task = _progress(len(conversations), f"judging ({self.model})")

        async def one(index: int, messages: list[dict]) -> None:
            async with pool:
                response = await client.chat.completions.create(model=self.model, messages=messages, **self.settings)
            on_reply(index, response.choices[0].message.content or "")
            progress.advance(task)

        with progress:
            tasks = [asyncio.create_task(one(i, m)) for i, m in enumerate(conversations)]
            try:
                done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                for t in done:
                    if t.exception() is not None:
                        raise self._explain(t.exception()) from None
            finally:
                await client.close()

    def _explain(self, err: BaseException) -> BaseException:
        import openai

        where = f"judge at {self.base_url}"
        if isinstance(err, openai.APITimeoutError):
            return JudgeError(f"{where} timed out after {self.max_retries} retries (judge.timeout_s={self.timeout_s})")
        if isinstance(err, openai.APIConnectionError):
            return JudgeError(f"{where} is unreachable after {self.max_retries} retries: start the server or fix judge.base_url")
        if isinstance(err, openai.AuthenticationError):
            return JudgeError(f"{where} rejected the API key (HTTP 401); check the key in the variable judge.api_key_env names")
        if isinstance(err, openai.NotFoundError):
            return JudgeError(f"{where} answered 404 for model {self.model!r}: check judge.model and judge.base_url (it usually ends in /v1)")
        if isinstance(err, openai.APIStatusError):
            return JudgeError(f"{where} answered HTTP {err.status_code} after {self.max_retries} retries: {str(err)[:200]}")
        return err


class HFJudge:
    """A local chat model judging greedily; `concurrency` prompts share one generate() call."""

    def __init__(self, cfg):
        if not cfg.model:
            raise ConfigError("judge=hf needs judge.model=<hub id or local path of a chat model>")
        self.model_name = cfg.model
        self.batch_size = max(1, cfg.concurrency)
        self.max_tokens = cfg.max_tokens
        self.settings = {"do_sample": False, "max_tokens": cfg.max_tokens}
        self._loaded = None

    @property
    def model(self) -> str:
        return self.model_name

    def _load(self):
        if self._loaded is None:
            from types import SimpleNamespace

            from transformers import AutoTokenizer

            from lima_recipes.errors import WeightsNotFoundError
            from lima_recipes.eval.placement import load_causal_lm
            from lima_recipes.model.build import check_weights_available

            try:
                check_weights_available(SimpleNamespace(path=self.model_name))
            except WeightsNotFoundError as err:
                raise WeightsNotFoundError(str(err).replace("model.path=", "judge.model=", 1)) from None
            tokenizer = AutoTokenizer.from_pretrained(self.model_name)
            model = load_causal_lm(self.model_name)  # on the GPU when there is one
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._loaded = model, tokenizer
        return self._loaded

    def complete(self, conversations: list[list[dict]], on_reply: OnReply) -> None:
        if not conversations:
            return
        import torch

        model, tokenizer = self._load()
        progress, task = _progress(len(conversations), f"judging ({self.model_name})")
        with progress:
            for start in range(0, len(conversations), self.batch_size):
                batch = conversations[start : start + self.batch_size]
                texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in batch]
                encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
                with torch.no_grad():
                    output = model.generate(**encoded, do_sample=False, max_new_tokens=self.max_tokens,
                                            pad_token_id=tokenizer.pad_token_id)
                for offset, row in enumerate(output[:, encoded["input_ids"].shape[1]:]):
                    on_reply(start + offset, tokenizer.decode(row, skip_special_tokens=True))
                progress.advance(task, len(batch))


def build_judge(cfg):
    if cfg.kind == "openai":
        return OpenAIJudge(cfg)
    if cfg.kind == "hf":
        return HFJudge(cfg)
    if cfg.kind == "none":
        return None
    raise ConfigError(f"judge.kind={cfg.kind}: use openai, hf or none")
