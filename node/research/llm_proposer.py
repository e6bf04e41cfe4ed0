"""The LLM proposer: ask any OpenAI-compatible server for the next experiment, fall back to search.

Works with OpenAI, vLLM, Ollama, llama.cpp and LM Studio: only ``/v1/models`` and
``/v1/chat/completions`` are used, with no tools and no response format, which every one of them
speaks. The model answers one JSON object ``{"diff": {...}, "hypothesis": "..."}``. Reasoning in
``<think>`` blocks and code fences are stripped, the diff is checked against the config space and
the tried set, and a bad answer is sent back with the reason, a few times. Timeouts, 429 and 5xx
are retried after a bounded back-off (Retry-After honoured). Whatever goes wrong, the step still
gets a proposal: the built-in proposer's, with ``fell_back_reason`` saying why.
"""

import itertools
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import openai

from node.errors import NodeError
from node.research.agent import AgentContext, Idea, Proposal, Proposer, clean_hypothesis
from node.research.llm_prompt import MAX_ALTERNATIVES, SYSTEM_PROMPT, retry_prompt, user_prompt
from node.research.sampler_proposer import SamplerProposer
from protocol.config import KNOB, apply, config_hash, diff_between
from protocol.errors import ConfigError

log = logging.getLogger("arnode.agent")
T = TypeVar("T")

OPENAI_MODEL = "gpt-4o-mini"  # used with no base URL and no model set, i.e. on OpenAI itself
NO_KEY = "no-key"  # local servers need none, but the client insists on some string
ENVIRONMENT = {"api_key": "OPENAI_API_KEY", "base_url": "OPENAI_BASE_URL", "model": "ARNODE_MODEL"}
ANSWER_CHARS = 4000  # how much of a bad answer goes back to the model with the complaint

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class LLMSettings:
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None  # None: the first model the server lists
    timeout_s: float = 120.0  # one request
    deadline_s: float = 600.0  # the whole proposal, retries included
    max_answers: int = 3  # answers to read before giving up on invalid ones
    max_retries: int = 3  # retries after timeouts, 429 and 5xx
    backoff_s: float = 2.0  # first back-off; doubles each retry
    max_backoff_s: float = 60.0
    temperature: float | None = None  # None: the server's default (reasoning models accept no other)

    def __post_init__(self) -> None:
        if self.max_answers < 1 or self.timeout_s <= 0 or self.deadline_s <= 0:
            raise NodeError("llm.max_answers, llm.timeout_s and llm.deadline_s must be positive")

    @property
    def enabled(self) -> bool:
        return bool(self.api_key or self.base_url)

    @classmethod
    def from_env(
        cls, config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> "LLMSettings":
        """Settings from OPENAI_API_KEY, OPENAI_BASE_URL and ARNODE_MODEL, else the ``llm`` table of ``config``.

        ``config`` is the node's config as a mapping (e.g. ``dataclasses.asdict(settings)``); empty
        strings count as unset. The other settings are for the caller to pass.
        """
        environ = os.environ if environ is None else environ
        table = (config or {}).get("llm") or {}
        if not isinstance(table, Mapping):
            raise NodeError("the llm section of the config must be a table")
        values = {}
        for name, variable in ENVIRONMENT.items():
            value = environ.get(variable) or table.get(name) or None
            if value is not None and not isinstance(value, str):
                raise NodeError(f"llm.{name} must be a string, not {value!r}")
            values[name] = value
        return cls(**values)


class InvalidAnswer(ValueError):
    """The model's answer cannot be used; the message goes back to the model."""


class GiveUp(Exception):
    """Stop asking the model; the message is the fall-back reason."""


class LLMProposer:
    """Synchronous: the daemon runs ``propose`` in a worker thread. Never raises for the server's faults."""

    def __init__(self, settings: LLMSettings, fallback: Proposer | None = None) -> None:
        self.settings = settings
        self.fallback = fallback or SamplerProposer()
        self.model = settings.model or (None if settings.base_url else OPENAI_MODEL)
        self.client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or NO_KEY,
            timeout=settings.timeout_s,
            max_retries=0,  # retries are ours, so they are bounded and logged
        )

    @property
    def name(self) -> str:
        return self.model or "llm"

    def propose(self, ctx: AgentContext, rng: random.Random) -> Proposal:
        """The model's proposal, or the built-in proposer's with the reason the model's was not used."""
        try:
            return self._ask_model(ctx, time.monotonic() + self.settings.deadline_s)
        except GiveUp as err:
            reason = str(err)
        except Exception as err:  # a server's reply must never cost the node its step
            log.exception("unexpected failure talking to the LLM")
            reason = f"unexpected {type(err).__name__}: {_brief(str(err))}"
        log.warning("LLM proposal failed, using the built-in proposer: %s", reason)
        return replace(self.fallback.propose(ctx, rng), fell_back_reason=reason)

    def _ask_model(self, ctx: AgentContext, deadline: float) -> Proposal:
        model = self.model or self._first_model(deadline)
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_prompt(ctx)}]
        for answer_number in itertools.count(1):
            text = self._call(deadline, self._complete, model, messages)
            try:
                return parse_answer(text, ctx, model)
            except InvalidAnswer as err:
                log.info("LLM answer %d of %d rejected: %s", answer_number, self.settings.max_answers, err)
                if answer_number == self.settings.max_answers:
                    raise GiveUp(f"{answer_number} invalid answers, the last: {err}") from None
                messages += [
                    {"role": "assistant", "content": text[:ANSWER_CHARS]},
                    {"role": "user", "content": retry_prompt(str(err))},
                ]

    def _first_model(self, deadline: float) -> str:
        models = self._call(deadline, self._list_models)
        if not models:
            raise GiveUp(f"the server at {self.settings.base_url} lists no models; set ARNODE_MODEL")
        self.model = models[0]
        log.info("using model %s, the first the server lists", self.model)
        return self.model

    def _list_models(self, timeout: float) -> list[str]:
        page = self.client.models.list(timeout=timeout)
        try:
            return [model.id for model in page.data]
        except (AttributeError, TypeError):
            raise ValueError("the model list has no model ids") from None

    def _complete(self, model: str, messages: list[dict[str, str]], timeout: float) -> str:
        sampling = {} if self.settings.temperature is None else {"temperature": self.settings.temperature}
        response = self.client.chat.completions.create(model=model, messages=messages, timeout=timeout, **sampling)
        try:
            content = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise ValueError("the reply holds no chat message") from None
        return content if isinstance(content, str) else ""

    def _call(self, deadline: float, request: Callable[..., T], *args: Any) -> T:
        """Run ``request(*args, timeout)`` with back-off on timeouts, 429 and 5xx, within the deadline."""
        for attempt in itertools.count():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GiveUp(f"no usable answer within the deadline of {self.settings.deadline_s:g} s")
            try:
                return request(*args, min(self.settings.timeout_s, remaining))
            except openai.APIStatusError as err:
                if err.status_code != 429 and err.status_code < 500:
                    raise GiveUp(f"the server refused: HTTP {err.status_code}: {_brief(err.message)}") from None
                problem, wait = f"HTTP {err.status_code}", _retry_after(err.response.headers)
            except openai.APIConnectionError as err:  # includes timeouts
                problem, wait = _brief(str(err)) or type(err).__name__, None
            except (openai.OpenAIError, ValueError) as err:  # a reply the client could not parse
                problem, wait = f"bad reply: {_brief(str(err))}", None
            if attempt == self.settings.max_retries:
                raise GiveUp(f"{problem} after {attempt + 1} tries")
            wait = min(self.settings.backoff_s * 2**attempt if wait is None else wait, self.settings.max_backoff_s)
            log.info("LLM request failed (%s); retrying in %.1f s", problem, wait)
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))


def parse_answer(text: str, ctx: AgentContext, model: str) -> Proposal:
    """The proposal in a model's answer text; InvalidAnswer says what to fix."""
    answer = _json_object(_strip_reasoning(text))
    diff, hypothesis = answer.get("diff"), answer.get("hypothesis")
    if not isinstance(diff, Mapping):
        raise InvalidAnswer('the answer needs "diff": an object of knob names to values')
    if not isinstance(hypothesis, str) or not hypothesis.strip():
        raise InvalidAnswer('the answer needs "hypothesis": one or two sentences of text')
    # the seed is a per-run setting the node chooses; a change to it proposes nothing
    diff = {name: value for name, value in diff.items() if name not in KNOB or KNOB[name].hashed}
    try:
        config = apply(ctx.best_config, diff, strict=False)
    except ConfigError as err:
        raise InvalidAnswer(str(err)) from None
    diff = diff_between(ctx.best_config, config)
    if not diff:
        raise InvalidAnswer("the diff changes nothing in the best config")
    if not ctx.space.allows(config, ctx.best_config):
        raise InvalidAnswer(f"the diff leaves the search space; change only {'; '.join(ctx.space.describe())}")
    digest = config_hash(config)
    if digest in ctx.tried:
        raise InvalidAnswer(f"that config ({digest[:12]}) was already tried or claimed; propose a different one")
    alternatives = _alternatives(answer.get("alternatives"), ctx, {digest})
    return Proposal(diff, config, digest, clean_hypothesis(hypothesis), model, alternatives=alternatives)


def _alternatives(ideas: Any, ctx: AgentContext, taken: set[str]) -> tuple[Idea, ...]:
    """The answer's runner-up ideas that are valid and untried; a bad one is dropped, never a reason to ask again."""
    if not isinstance(ideas, list):
        return ()
    found = []
    for idea in ideas[:MAX_ALTERNATIVES]:
        if not isinstance(idea, Mapping) or not isinstance(idea.get("hypothesis"), str):
            continue
        diff = idea.get("diff")
        try:
            diff = {name: value for name, value in diff.items() if name not in KNOB or KNOB[name].hashed}
            config = apply(ctx.best_config, diff, strict=False)
        except (AttributeError, ConfigError):
            continue  # not a map, or not a valid change
        digest = config_hash(config)
        diff = diff_between(ctx.best_config, config)
        fresh = digest not in ctx.tried and digest not in taken and ctx.space.allows(config, ctx.best_config)
        if diff and fresh and idea["hypothesis"].strip():
            taken.add(digest)
            found.append(Idea(diff, clean_hypothesis(idea["hypothesis"])))
    return tuple(found)


def _strip_reasoning(text: str) -> str:
    text = _THINK_BLOCK.sub("", text)
    if "</think>" in text:  # templates that open the block in the prompt leave only its end
        text = text.rsplit("</think>", 1)[1]
    fenced = _FENCE.findall(text)
    return fenced[-1] if fenced else text


def _json_object(text: str) -> dict[str, Any]:
    """The JSON object holding the diff, tolerating prose (even with braces) around it."""
    decoder, parse_error = json.JSONDecoder(), None
    for start in (match.start() for match in re.finditer(r"\{", text)):
        try:
            answer, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError as err:
            parse_error = parse_error or err
            continue
        if isinstance(answer, dict) and "diff" in answer:
            return answer
    if parse_error:
        raise InvalidAnswer(f"the JSON does not parse: {parse_error}")
    raise InvalidAnswer('the answer holds no JSON object with a "diff"')


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None  # absent, or an HTTP date: use our own back-off


def _brief(text: str) -> str:
    return " ".join(str(text).split())[:200]


def make_proposer(settings: LLMSettings) -> SamplerProposer | LLMProposer:
    """The LLM proposer when a key or a base URL is set, else the search: a sampler over a restricted
    search space, the model-based proposer over every knob."""
    return LLMProposer(settings) if settings.enabled else SamplerProposer()
