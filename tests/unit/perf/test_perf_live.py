"""Live-benchmark client against a real (in-test) HTTP server streaming SSE."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from llmctl.bench.live import RequestTiming, parse_sse, run_benchmark, steady_itl, timing_from_events
from llmctl.cli.main import app
from llmctl.errors import LlmctlError
from llmctl.perf.calibrate import points_from_benchmark

FIRST_TOKEN_DELAY_S = 0.02
TOKEN_GAP_S = 0.005


class _SSEHandler(BaseHTTPRequestHandler):
    """A tiny OpenAI-style /v1/completions that streams one token per SSE event with fixed delays."""

    bodies: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        if self.path != "/v1/completions" or body.get("model") != "tiny":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": "model not found"}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        n = int(body["max_tokens"])
        time.sleep(FIRST_TOKEN_DELAY_S)
        for i in range(n):
            if i:
                time.sleep(TOKEN_GAP_S)
            event = {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": f" t{i}"}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        usage = {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": n}}
        self.wfile.write(f": keep-alive comment\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        self.wfile.flush()


@pytest.fixture
def sse_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []
    handler = type("Handler", (_SSEHandler,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_parse_sse_skips_comments_and_stops_at_done() -> None:
    lines = [
        ": hello",
        "",
        'data: {"choices": [{"text": "a"}]}',
        "event: x",
        "data: [DONE]",
        'data: {"late": 1}',
    ]
    assert list(parse_sse(lines)) == [{"choices": [{"text": "a"}]}]
    with pytest.raises(LlmctlError, match="malformed SSE"):
        list(parse_sse(["data: {nope"]))


def test_timing_prefers_usage_token_counts() -> None:
    # Two chunks carrying 5 tokens (e.g. speculative decoding): ITL spreads the gap over 4 intervals.
    events: list[tuple[float, dict[str, Any]]] = [
        (1.1, {"choices": [{"text": "ab"}]}),
        (1.5, {"choices": [{"text": "cde"}]}),
        (1.5, {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5}}),
    ]
    t = timing_from_events(events, start=1.0, prompt_tokens=100)
    assert t.ttft_s == pytest.approx(0.1)
    assert t.itl_s == pytest.approx(0.1)
    assert (t.prompt_tokens, t.completion_tokens) == (9, 5)


def test_timing_counts_chunks_whose_text_is_held_back() -> None:
    # vLLM streams a chunk per token even when its text is held back (a partial UTF-8 character): it counts;
    # an empty chunk that only carries the finish reason does not.
    events: list[tuple[float, dict[str, Any]]] = [
        (1.2, {"choices": [{"text": "", "finish_reason": None}]}),
        (1.4, {"choices": [{"text": "", "finish_reason": None}]}),
        (1.6, {"choices": [{"text": "x", "finish_reason": "length"}]}),
        (1.9, {"choices": [{"text": "", "finish_reason": "length"}]}),
    ]
    t = timing_from_events(events, start=1.0, prompt_tokens=4)
    assert t.ttft_s == pytest.approx(0.2)
    assert t.completion_tokens == 3 and t.itl_s == pytest.approx(0.2)


def test_steady_itl_leaves_out_the_gaps_that_hold_a_later_prefill() -> None:
    # Request a starts alone; b's prefill (a 1 s step) delays a's second token; then both decode, 0.1 s a step.
    a = RequestTiming(1.0, 0.0, 8, 5, token_times=(1.0, 2.1, 2.2, 2.3, 2.4))
    b = RequestTiming(2.1, 0.0, 8, 4, token_times=(2.1, 2.2, 2.3, 2.4))
    assert steady_itl([a, b]) == pytest.approx(0.1)
    mean_a = (2.4 - 1.0) / 4
    assert mean_a > 3 * 0.1  # what the mean gap would have told the fit
    # Generation shorter than the spread of first tokens: no window, no steady estimate.
    c = RequestTiming(3.0, 0.0, 8, 2, token_times=(3.0, 3.1))
    assert steady_itl([a, c]) is None


def test_benchmark_against_streaming_server(sse_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, bodies = sse_server
    levels = run_benchmark(url, "tiny", concurrencies=(1, 3), prompt_tokens=40, output_tokens=6)
    assert [lv.concurrency for lv in levels] == [1, 3]
    # One unmeasured warm-up request first, then the levels.
    assert len(bodies) == 5 and bodies[0]["max_tokens"] == 2
    assert all(b["stream"] and b["max_tokens"] == 6 for b in bodies[1:])
    # Prompts of four-character one-token words, none repeated (a prefix cache would skip their prefill).
    assert all(len(b["prompt"]) == 4 * 40 for b in bodies) and len({b["prompt"] for b in bodies}) == 5
    for level in levels:
        assert (level.prompt_tokens, level.output_tokens) == (40, 6)
        assert level.ttft_s >= FIRST_TOKEN_DELAY_S
        assert TOKEN_GAP_S * 0.9 <= level.itl_s < TOKEN_GAP_S * 10
    points = points_from_benchmark(levels)
    assert [(p.batch, p.context, p.prefill_tokens) for p in points] == [(1, 43, 0), (0, 0, 40), (3, 43, 0)]


def test_benchmark_reports_http_errors(sse_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = sse_server
    with pytest.raises(LlmctlError, match="HTTP 404"):
        run_benchmark(url, "other", concurrencies=(1,), prompt_tokens=4, output_tokens=2)
    with pytest.raises(LlmctlError, match=r"benchmark of http://127\.0\.0\.1:9 failed"):
        run_benchmark("http://127.0.0.1:9", "tiny", concurrencies=(1,), prompt_tokens=4, output_tokens=2)


def test_calibrate_cli_against_streaming_server(
    sse_server: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, _ = sse_server
    out = tmp_path / "fitted.yaml"
    args = ["perf", "calibrate", "vllm/meta-llama/Llama-3.1-8B-Instruct/H100-SXM/bf16/tp1", "--url", url,
            "--served-model-name", "tiny", "--concurrency", "1,2,4", "--prompt-tokens", "40",
            "--output-tokens", "4", "--fit", "overhead_s", "-o", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(out.read_text())
    assert data["calibration"]["points"] == 4
    # The fake server's ~5 ms token gap is near the model's 8B step, so overhead stays in its range.
    assert 0 <= data["factors"]["overhead_s"] <= 0.05
