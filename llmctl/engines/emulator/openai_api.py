"""What the emulated engines accept on /v1/completions and /v1/chat/completions, and the bodies they answer
with, in each engine's own shapes: vLLM's as 0.32 answers (checked against a real one by
llmctl.bench.conformance), SGLang's as before. Pure: the server turns these into HTTP.

vLLM checks a request in this order: FastAPI/pydantic validation (type "Bad Request", param the dotted
location, message "N validation error(s): ..."), then the model (404), the prompt, max_tokens against the
context (max_tokens past max_model_len and prompts longer than it are refused; otherwise max_tokens is cut
to what fits), then max_tokens >= 1, each refusal naming its parameter.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from llmctl.engines.emulator.config import EmulatorConfig, prompt_tokens
from llmctl.engines.snapshots import PINNED_VERSIONS

DEFAULT_MAX_TOKENS = 16  # vLLM's completions default; also the emulator's stand-in for a chat answer's EOS

# vLLM's answer keys that carry nothing the emulator computes: present, as null, so clients that index them
# (or a strict schema) see what a real replica sends.
WHOLE_EXTRA = {"service_tier": None, "kv_transfer_params": None, "ec_transfer_params": None, "metrics": None}
CHAT_EXTRA = {"prompt_logprobs": None, "prompt_token_ids": None, "prompt_text": None}
TEXT_CHOICE_EXTRA = {
    "stop_reason": None, "token_ids": None, "prompt_logprobs": None, "prompt_token_ids": None, "routed_experts": None,
}  # fmt: skip
CHAT_CHOICE_EXTRA = {"stop_reason": None, "token_ids": None, "routed_experts": None}
MESSAGE_EXTRA = {
    "refusal": None,
    "annotations": None,
    "audio": None,
    "function_call": None,
    "reasoning": None,
}
USAGE_EXTRA = {"prompt_tokens_details": None, "completion_tokens_details": None}


class RequestError(Exception):
    def __init__(
        self, status: int, message: str, kind: str = "BadRequestError", param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.param = param


@dataclass(frozen=True)
class Parsed:
    model: str
    prompt_tokens: int
    max_tokens: int
    stream: bool
    include_usage: bool
    continuous_usage: bool = False  # stream_options.continuous_usage_stats: usage on every chunk (vLLM)
    adapter: str | None = None  # the LoRA adapter the request names, None for the base model


def _summary(value: object) -> str:
    """How vLLM's validation handler echoes an input: containers by size, anything else as text."""
    if isinstance(value, list | dict):
        return f"<{type(value).__name__} of {len(value)} items>"
    return value if isinstance(value, str) else str(value)


def invalid(errors: list[dict[str, Any] | str]) -> RequestError:
    """A FastAPI request validation error as vLLM reports it: param is the first error's location."""
    label = "error" if len(errors) == 1 else "errors"
    message = f"{len(errors)} validation {label}:\n" + "".join(f"  {e}\n" for e in errors)
    first = errors[0]
    return RequestError(
        400, message.rstrip(), "Bad Request", first.get("loc") if isinstance(first, dict) else None
    )


def _field(loc: str, kind: str, msg: str, value: object) -> dict[str, Any]:
    return {"type": kind, "loc": f"body.{loc}", "msg": msg, "input": _summary(value)}


def _as_int(name: str, value: object) -> tuple[int | None, dict[str, Any] | None]:
    """pydantic's lax int: bools, integral floats and numeric strings pass."""
    if value is None or isinstance(value, int):
        return (None if value is None else int(value)), None
    if isinstance(value, float):
        if value.is_integer():
            return int(value), None
        return None, _field(name, "int_from_float", "Input should be a valid integer, got a number with a "
                            "fractional part", value)  # fmt: skip
    if isinstance(value, str):
        try:
            return int(value.strip()), None
        except ValueError:
            return None, _field(name, "int_parsing", "Input should be a valid integer, unable to parse string "
                                "as an integer", value)  # fmt: skip
    return None, _field(name, "int_type", "Input should be a valid integer", value)


def load(flavour: str, raw: bytes, content_type: str | None) -> Any:
    """The request body as JSON, or RequestError as the engine words a body it cannot read."""
    if flavour != "vllm":
        try:
            return json.loads(raw)
        except ValueError:
            raise RequestError(400, "request body is not valid JSON") from None
    if content_type is None or (content_type != "application/json" and not content_type.endswith("+json")):
        raise invalid(["Unsupported Media Type: Only 'application/json' is allowed"])
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": f"body.{exc.pos}", "msg": "JSON decode error",
                 "input": "<dict of 0 items>", "ctx": {"error": exc.msg}}  # fmt: skip
        raise invalid([error]) from None


def prompt_length(body: dict[str, Any], chat: bool) -> tuple[int, bool]:
    """(prompt tokens, counted from text): a token-id list's length, else about four characters per token
    (chat content may be a string or a list of parts)."""
    if not chat:
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            return len(prompt), False
        return (prompt_tokens(str(prompt)) if prompt else 0), True
    text = ""
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text += str(content or "")
    return (prompt_tokens(text) if text else 0), True


def _model(c: EmulatorConfig, body: dict[str, Any], adapters: Collection[str]) -> tuple[str, str | None]:
    """(the model the answer names, the adapter): vLLM takes an adapter's own name, SGLang's OpenAI API
    "base:adapter" (lora/serving docs of each)."""
    model = body.get("model")
    if c.flavour == "vllm" and not model:
        return c.served_names[0], None  # vLLM serves its model to a request that names none
    if c.flavour == "vllm" and model in adapters:
        return str(model), str(model)
    if c.flavour == "sglang" and isinstance(model, str) and ":" in model:
        base, _, adapter = model.partition(":")
        if base in c.served_names and adapter in adapters:
            return model, adapter
        if base in c.served_names and c.lora is not None:
            raise RequestError(400, f"LoRA adapter '{adapter}' is not loaded.", param="model")
    if model not in c.served_names:
        aliases = f" Valid aliases: {', '.join(c.served_names)}." if c.flavour == "vllm" else ""
        raise RequestError(404, f"The model `{model}` does not exist.{aliases}", "NotFoundError", "model")
    return str(model), None


def _streaming(body: dict[str, Any]) -> tuple[bool, bool, bool]:
    """(stream, include_usage, continuous usage): the last only with include_usage, as in vLLM."""
    options = body.get("stream_options")
    usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return bool(body.get("stream")), usage, usage and bool(obj_get(options, "continuous_usage_stats"))


def obj_get(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, dict) else None


def parse(
    c: EmulatorConfig, body: Any, chat: bool, capacity: int, sleeping: bool, adapters: Collection[str] = ()
) -> Parsed:
    """What a request asks for, max_tokens as the engine will run it; or RequestError in the engine's words.
    Sleeping engines refuse with 503 once the request is known to be for them. `adapters`: the registered
    LoRA adapters' names."""
    return (parse_vllm if c.flavour == "vllm" else parse_sglang)(c, body, chat, capacity, sleeping, adapters)


def parse_vllm(
    c: EmulatorConfig, body: Any, chat: bool, capacity: int, sleeping: bool, adapters: Collection[str] = ()
) -> Parsed:
    if not isinstance(body, dict):
        raise invalid([{"type": "model_attributes_type", "loc": "body", "msg": "Input should be a valid "
                        "dictionary or object to extract fields from", "input": _summary(body)}])  # fmt: skip
    name = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    max_tokens, problem = _as_int(name, body.get(name))
    problems: list[dict[str, Any] | str] = [problem] if problem else []
    if chat and "messages" not in body:
        problems.insert(0, _field("messages", "missing", "Field required", body))
    elif chat and not isinstance(body["messages"], list):
        problems.insert(0, _field("messages", "list_type", "Input should be a valid list", body["messages"]))
    if problems:
        raise invalid(problems)
    model, adapter = _model(c, body, adapters)
    if sleeping:
        raise RequestError(503, "the engine is sleeping; wake it up first", "ServiceUnavailableError")
    n_prompt, from_text = prompt_length(body, chat)
    if chat and not body["messages"]:
        raise RequestError(
            400, "Cannot apply chat template to an empty conversation. Provide at least one message."
        )
    if not chat and n_prompt < 1:
        raise RequestError(400, "Either prompt or prompt_embeds must be provided and non-empty. (parameter=prompt)",
                           param="prompt")  # fmt: skip
    n_prompt = max(1, n_prompt)  # a chat template adds tokens even around empty messages
    wanted = vllm_max_tokens(c, n_prompt, from_text, max_tokens, name, chat, bool(body.get("ignore_eos")))
    return Parsed(model, n_prompt, wanted, *_streaming(body), adapter=adapter)


def parse_sglang(
    c: EmulatorConfig, body: Any, chat: bool, capacity: int, sleeping: bool, adapters: Collection[str] = ()
) -> Parsed:
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object")
    model, adapter = _model(c, body, adapters)
    if sleeping:
        raise RequestError(503, "the engine is sleeping; wake it up first", "ServiceUnavailableError")
    n_prompt, _ = prompt_length(body, chat)
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if n_prompt < 1:
        raise RequestError(400, "The prompt cannot be empty.")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise RequestError(400, f"max_tokens must be at least 1, got {max_tokens}.")
    wanted = sglang_max_tokens(c, capacity, n_prompt, max_tokens)
    return Parsed(model, n_prompt, wanted, *_streaming(body), adapter=adapter)


def _refuse(message: str, param: str, value: int) -> RequestError:
    return RequestError(400, f"{message} (parameter={param}, value={value})", param=param)


def vllm_max_tokens(
    c: EmulatorConfig,
    n_prompt: int,
    from_text: bool,
    given: int | None,
    name: str,
    chat: bool,
    ignore_eos: bool,
) -> int:
    limit = c.max_model_len
    if given is not None and given > limit:
        raise _refuse(f"{name}={given} cannot be greater than max_model_len={limit}. Please request fewer output "
                      "tokens.", name, given)  # fmt: skip
    if n_prompt > limit:
        # vLLM's tokenizer stops at one token past the limit, so of a long text it knows only "at least".
        count = limit + 1 if from_text else n_prompt
        qualifier = "at least " if from_text else ""
        raise _refuse(f"This model's maximum context length is {limit} tokens. However, your prompt contains "
                      f"{qualifier}{count} input tokens, which exceeds this limit even without any output tokens. "
                      "Please reduce the length of the input prompt.", "input_tokens", count)  # fmt: skip
    # A chat answer without max_tokens may run to the end of the context; with no EOS to stop it, the
    # emulator does so only when the client asked EOS to be ignored (else it stops at 16, as if at an EOS).
    default = limit - n_prompt if chat and ignore_eos else DEFAULT_MAX_TOKENS
    wanted = min(limit - n_prompt, default if given is None else given)
    if wanted < 1:
        raise _refuse(f"max_tokens must be at least 1, got {wanted}.", "max_tokens", wanted)
    return wanted


def sglang_max_tokens(c: EmulatorConfig, capacity: int, n_prompt: int, given: int | None) -> int:
    limit = c.max_model_len
    wanted = DEFAULT_MAX_TOKENS if given is None else given
    if n_prompt >= limit:
        raise RequestError(
            400, f"The input ({n_prompt} tokens) is longer than the model's context length ({limit} tokens)."
        )
    if n_prompt + wanted >= limit:
        raise RequestError(
            400,
            f"Requested token count exceeds the model's maximum context length of {limit} tokens. You "
            f"requested a total of {n_prompt + wanted} tokens: {n_prompt} tokens from the input messages and "
            f"{wanted} tokens for the completion. Please reduce the number of tokens in the input messages "
            "or the completion to fit within the limit.",
        )
    # SGLang starts with a KV pool smaller than the context and bounds each request by the pool instead.
    max_req_len = min(limit, capacity) - 1
    if n_prompt > max_req_len - 5:
        raise RequestError(
            400,
            f"Input length ({n_prompt} tokens) exceeds the maximum allowed length ({max_req_len - 5} tokens). "
            "Use a shorter input or enable --allow-auto-truncate.",
        )
    return min(wanted, max_req_len - n_prompt - 1)


# ---- answers -------------------------------------------------------------------------------------------


def fingerprint(c: EmulatorConfig) -> str:
    """vLLM's system_fingerprint, `vllm-<version>-<8 hex>` (the hex a hash of its configuration)."""
    digest = hashlib.sha256(repr(c).encode()).hexdigest()[:8]
    return f"vllm-{PINNED_VERSIONS['vllm']}-{digest}"


@dataclass(frozen=True)
class Answer:
    """What every body of one request's answer shares."""

    chat: bool
    vllm: bool
    model: str
    id: str
    fingerprint: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def for_request(cls, c: EmulatorConfig, chat: bool, model: str, rid: str) -> Answer:
        vllm = c.flavour == "vllm"
        # vLLM: 16 random hex digits after the prefix; SGLang's emulation keeps the request's number.
        suffix = secrets.token_hex(8) if vllm else rid
        return cls(
            chat, vllm, model, f"{'chatcmpl' if chat else 'cmpl'}-{suffix}", fingerprint(c) if vllm else ""
        )

    def head(self, stream: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if stream else "chat.completion") if self.chat else "text_completion"
        return {"object": kind, "created": self.created, "model": self.model}


def usage(a: Answer, n_prompt: int, produced: int, stream: bool = False) -> dict[str, Any]:
    if not a.vllm:
        return {"prompt_tokens": n_prompt, "completion_tokens": produced, "total_tokens": n_prompt + produced}
    counts = {"prompt_tokens": n_prompt, "total_tokens": n_prompt + produced, "completion_tokens": produced}
    return counts if stream else {**counts, **USAGE_EXTRA}


def whole(a: Answer, text: str, reason: str, n_prompt: int, produced: int) -> dict[str, Any]:
    if a.chat:
        message: dict[str, Any] = {"role": "assistant", "content": text, **(MESSAGE_EXTRA if a.vllm else {})}
        choice: dict[str, Any] = {"index": 0, "message": message}
        choice |= (
            {"logprobs": None, "finish_reason": reason, **CHAT_CHOICE_EXTRA}
            if a.vllm
            else {"finish_reason": reason}
        )
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        choice |= TEXT_CHOICE_EXTRA if a.vllm else {}
    body = {"id": a.id, **a.head(stream=False), "choices": [choice]}
    if a.vllm:
        return {**body, "service_tier": None, "system_fingerprint": a.fingerprint,
                "usage": usage(a, n_prompt, produced), **(CHAT_EXTRA if a.chat else {}), **WHOLE_EXTRA}  # fmt: skip
    return {**body, "usage": usage(a, n_prompt, produced)}


class Stream:
    """The chunks of one streamed answer, all under one id. vLLM puts system_fingerprint on the last chunk
    (the usage chunk, else the finish chunk) and, asked for continuous usage, usage so far on every chunk."""

    def __init__(self, a: Answer, asked: Parsed) -> None:
        self.a = a
        self.asked = asked
        self.first = True

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.a.id, **self.a.head(stream=True), "choices": choices, **extra}

    def _running_usage(self, produced: int) -> dict[str, Any]:
        if not (self.a.vllm and self.asked.continuous_usage):
            return {}
        return {"usage": usage(self.a, self.asked.prompt_tokens, produced, stream=True)}

    def opening(self) -> list[dict[str, Any]]:
        """vLLM's first chat chunk names the role and carries no token."""
        if not (self.a.vllm and self.a.chat):
            return []
        choice = {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
        return [self._chunk([choice], prompt_token_ids=None, prompt_text=None, **self._running_usage(0))]

    def tokens(self, text: str, reason: str | None, produced: int) -> dict[str, Any]:
        """A chunk of tokens (`produced`: how many the answer has now), the finish reason on the last."""
        a = self.a
        if a.chat:
            role = (
                {"role": "assistant"} if self.first and not a.vllm else {}
            )  # SGLang: role on the first token
            choice: dict[str, Any] = {"index": 0, "delta": {**role, "content": text}}
            choice |= {"logprobs": None, "finish_reason": reason} if a.vllm else {"finish_reason": reason}
            if a.vllm:
                choice |= ({"stop_reason": None} if reason else {}) | {"token_ids": None}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
            choice |= {"stop_reason": None, "prompt_token_ids": None, "token_ids": None} if a.vllm else {}
        self.first = False
        last = a.vllm and reason is not None and not self.asked.include_usage
        return self._chunk(
            [choice],
            **self._running_usage(produced),
            **({"system_fingerprint": a.fingerprint} if last else {}),
        )

    def usage(self, n_prompt: int, produced: int) -> dict[str, Any]:
        extra = {"system_fingerprint": self.a.fingerprint} if self.a.vllm else {}
        return self._chunk([], usage=usage(self.a, n_prompt, produced, stream=True), **extra)
