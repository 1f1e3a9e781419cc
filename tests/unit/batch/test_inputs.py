"""Input lines: every line becomes a request or a problem with its line number; duplicates are named with
both lines; nothing is dropped silently."""

from __future__ import annotations

import json

from llmctl.batch.inputs import ASSUMED_MAX_TOKENS, BatchRequest, estimated_tokens, parse_lines


def line(cid: object = "a", url: str = "/v1/chat/completions", **extra: object) -> str:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    return json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body, **extra})


def test_each_malformed_line_is_reported_with_its_number_and_reason() -> None:
    lines = [
        line("ok-1"),
        "{not json",
        json.dumps({"method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}}),
        line("wrong-url", url="/v1/embeddings"),
        json.dumps({"custom_id": "get", "method": "GET", "url": "/v1/completions", "body": {"prompt": "x"}}),
        json.dumps({"custom_id": "nobody", "method": "POST", "url": "/v1/completions"}),
        json.dumps(
            {
                "custom_id": "s",
                "method": "POST",
                "url": "/v1/completions",
                "body": {"prompt": "x", "stream": True},
            }
        ),
        "",
        "[1, 2]",
        line(""),
        line("extra", foo=1),
        json.dumps({"custom_id": "noprompt", "method": "POST", "url": "/v1/completions", "body": {}}),
        line("ok-2"),
    ]
    parsed = parse_lines(lines)
    assert [r.custom_id for r in parsed.requests] == ["ok-1", "ok-2"]
    assert [r.line for r in parsed.requests] == [1, 13]
    reasons = {p.line: p.reason for p in parsed.malformed}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 9, 10, 11, 12]
    assert reasons[2].startswith("not valid JSON")
    assert reasons[3] == "missing custom_id"
    assert "url must be one of" in reasons[4] and "/v1/embeddings" in reasons[4]
    assert reasons[5] == "method must be POST, got 'GET'"
    assert reasons[6] == "body must be a JSON object"
    assert "stream" in reasons[7]
    assert reasons[9] == "expected a JSON object, got list"
    assert "non-empty string" in reasons[10]
    assert reasons[11] == "unknown field(s) foo"
    assert "prompt" in reasons[12]
    # every non-blank line is accounted for
    assert len(parsed.requests) + len(parsed.malformed) == sum(1 for x in lines if x.strip())


def test_duplicates_name_both_lines() -> None:
    parsed = parse_lines([line("a"), line("b"), line("a"), line("a")])
    assert [r.custom_id for r in parsed.requests] == ["a", "b"]
    assert [(p.line, p.reason) for p in parsed.duplicates] == [
        (3, "custom_id 'a' already used on line 1"),
        (4, "custom_id 'a' already used on line 1"),
    ]
    text = parsed.describe("in.jsonl", parsed.duplicates)
    assert text.splitlines()[0] == "in.jsonl:3: custom_id 'a' already used on line 1"


def test_describe_caps_long_lists() -> None:
    parsed = parse_lines(["{"] * 30)
    text = parsed.describe("f", parsed.malformed, limit=5)
    assert text.splitlines()[-1] == "... and 25 more"


def test_estimated_tokens_counts_prompt_and_max_tokens() -> None:
    chat = BatchRequest(
        "a", "/v1/chat/completions", {"messages": [{"content": "x" * 40}], "max_tokens": 7}, 1
    )
    assert estimated_tokens(chat) == 10 + 7
    plain = BatchRequest("b", "/v1/completions", {"prompt": "x" * 8}, 2)
    assert estimated_tokens(plain) == 2 + ASSUMED_MAX_TOKENS


def test_nan_and_infinity_are_refused_at_their_line() -> None:
    # Old code: `"max_tokens": NaN` passed the input check and then crashed every resume.
    from llmctl.batch.inputs import parse_lines

    good = '{"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x", "max_tokens": 4}}'
    bad = good.replace('"max_tokens": 4', '"max_tokens": NaN').replace('"a"', '"b"')
    worse = good.replace('"max_tokens": 4', '"temperature": -Infinity').replace('"a"', '"c"')
    parsed = parse_lines([good, bad, worse])
    assert [r.custom_id for r in parsed.requests] == ["a"]
    assert [(p.line, p.reason) for p in parsed.malformed] == [
        (2, "NaN is not a JSON number; the request could never be sent"),
        (3, "-Infinity is not a JSON number; the request could never be sent"),
    ]
