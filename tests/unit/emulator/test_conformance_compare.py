"""llmctl.bench.conformance's pure half: answers reduced to structure, then compared into rows. The sample
answers are a real vLLM 0.32's (trimmed)."""

from __future__ import annotations

import json

from llmctl.bench.conformance import DELIBERATE, compare, probes, stale_deliberate
from llmctl.bench.conformance_observe import (
    Context,
    Exchange,
    compress,
    id_shape,
    observe,
    observe_metrics,
    parse_sse,
)

CTX = Context("tiny", 1024)

REAL_CHAT_STREAM = "".join(
    f"data: {json.dumps(chunk)}\n\n"
    for chunk in [
        {"id": "chatcmpl-a8db065b4b1254c4", "object": "chat.completion.chunk", "created": 1, "model": "tiny",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None}], "prompt_token_ids": None, "prompt_text": None},
        {"id": "chatcmpl-a8db065b4b1254c4", "object": "chat.completion.chunk", "created": 1, "model": "tiny",
         "choices": [{"index": 0, "delta": {"content": "23"}, "logprobs": None, "finish_reason": None,
                      "token_ids": None}]},
        {"id": "chatcmpl-a8db065b4b1254c4", "object": "chat.completion.chunk", "created": 1, "model": "tiny",
         "choices": [{"index": 0, "delta": {"content": " thank"}, "logprobs": None, "finish_reason": None,
                      "token_ids": None}]},
        {"id": "chatcmpl-a8db065b4b1254c4", "object": "chat.completion.chunk", "created": 1, "model": "tiny",
         "choices": [{"index": 0, "delta": {"content": "z"}, "logprobs": None, "finish_reason": "length",
                      "stop_reason": None, "token_ids": None}]},
        {"id": "chatcmpl-a8db065b4b1254c4", "object": "chat.completion.chunk", "created": 1, "model": "tiny",
         "choices": [], "usage": {"prompt_tokens": 4, "total_tokens": 9, "completion_tokens": 5},
         "system_fingerprint": "vllm-0.32.0-1f328690"},
    ]
) + "data: [DONE]\n\n"  # fmt: skip

EXPOSITION = """# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 4047.0
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="tiny"} 1.7e+09
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="tiny"} 3.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="tiny"} 16.0
# HELP vllm:request_params_n Histogram of the n request parameter.
# TYPE vllm:request_params_n histogram
vllm:request_params_n_bucket{engine="0",le="1.0",model_name="tiny"} 19.0
vllm:request_params_n_bucket{engine="0",le="2.0",model_name="tiny"} 19.0
vllm:request_params_n_bucket{engine="0",le="+Inf",model_name="tiny"} 19.0
vllm:request_params_n_count{engine="0",model_name="tiny"} 19.0
vllm:request_params_n_sum{engine="0",model_name="tiny"} 19.0
"""


def test_a_stream_is_reduced_to_its_framing_and_the_sequence_of_chunk_kinds() -> None:
    seen = observe(
        {"chat.stream": Exchange(200, "text/event-stream", REAL_CHAT_STREAM)}, {"chat.stream": "stream"}, CTX
    )
    assert seen["chat.stream.framing"] == "ok"
    assert seen["chat.stream.sequence"] == ["role", "token*", "token+finish=length", "usage", "[DONE]"]
    assert seen["chat.stream.id"] == ["chatcmpl-<hex16>"] and seen["chat.stream.one_id"] is True
    keys = seen["chat.stream.chunk_keys"]
    assert isinstance(keys, dict) and set(keys) == {"role", "token", "token+finish", "usage"}
    assert seen["chat.stream.completion_tokens_is_max_tokens"] is True


def test_sse_framing_violations_are_named() -> None:
    assert parse_sse('data: {"a": 1}\n\n')[1] == "no data: [DONE] at the end"
    assert parse_sse('data: {"a": 1}\nextra\n\ndata: [DONE]\n\n')[1].startswith(
        "event 0 is not one `data: ` line"
    )
    assert parse_sse("data: [DONE]\n")[1] == "does not end with a blank line"
    assert compress(["token", "token", "token", "usage"]) == ["token*", "usage"]
    assert id_shape("cmpl-9d60abb87965e599") == "cmpl-<hex16>" and id_shape("cmpl-7") == "cmpl-<hex1>"


def test_metrics_reduce_to_families_labels_bounds_and_enumerations() -> None:
    seen = observe_metrics(EXPOSITION)
    assert seen["metrics.created_series"] is True and "metrics.family vllm:prompt_tokens_created" not in seen
    assert seen["metrics.family vllm:prompt_tokens"] == "counter"
    assert seen["metrics.labels vllm:request_success"] == ["engine", "finished_reason", "model_name"]
    assert seen["metrics.values vllm:request_success finished_reason"] == ["length", "stop"]
    assert seen["metrics.buckets vllm:request_params_n"] == ["1.0", "2.0", "+Inf"]
    assert not any(check.startswith("metrics.values vllm:request_params_n") for check in seen)  # le, engine


def test_compare_gives_same_differs_and_deliberate_with_absent_families_once() -> None:
    reference = {
        **observe_metrics(EXPOSITION),
        "version.value": "0.32.0",
        "completion.object": "text_completion",
    }
    candidate = {
        **observe_metrics(EXPOSITION.split("# HELP vllm:request_params_n")[0]),
        "version.value": "0.33.0",
        "completion.object": "completion",
    }
    rows = {r.check: r for r in compare(reference, candidate)}
    assert rows["metrics.family vllm:prompt_tokens"].verdict == "same"
    assert rows["completion.object"].verdict == "differs"
    assert (
        rows["version.value"].verdict == "deliberate"
        and rows["version.value"].reason == DELIBERATE["version.value"]
    )
    gone = rows["metrics.family vllm:request_params_n"]
    assert (gone.reference, gone.candidate, gone.verdict) == ("histogram", "absent", "differs")
    assert "metrics.buckets vllm:request_params_n" not in rows  # the family row says it already
    assert "version.value" not in stale_deliberate(rows.values())
    assert "version.value" in stale_deliberate([rows["completion.object"]])  # no longer seen differing


def test_error_bodies_keep_every_field_but_the_wording() -> None:
    body = {
        "error": {
            "message": "The model `x` does not exist.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }
    seen = observe(
        {"error.unknown_model": Exchange(404, "application/json", json.dumps(body))},
        {"error.unknown_model": "error"},
        CTX,
    )
    assert seen["error.unknown_model"] == {
        "status": 404,
        "body": {"error": {"code": 404, "message": "str", "param": "model", "type": "NotFoundError"}},
    }
    refused = observe({"health": Exchange(None)}, {"health": "status"}, CTX)
    assert refused == {"health.status": "refused"}


def test_probes_fit_the_context_they_are_built_for() -> None:
    plan = probes("tiny", 1024)
    assert plan["completion.clamped"].json == {
        "model": "tiny",
        "prompt": [7] * 1014,
        "max_tokens": 100,
        "ignore_eos": True,
    }
    assert list(plan)[-1] == "metrics"  # scraped after the traffic
    observers = {p.observe for p in plan.values()}
    assert observers <= {
        "status",
        "version",
        "models",
        "keys",
        "openapi",
        "whole",
        "fills_context",
        "stream",
        "error",
        "metrics",
    }
