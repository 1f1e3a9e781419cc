"""The output file as checkpoint: complete lines are done, a torn last line is cut off and its request sent
again, unreadable complete lines refuse the resume, and any sequence of crashes and resumes ends with each
custom_id exactly once (property test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.batch.inputs import BatchRequest
from llmctl.batch.outfile import OutputFile, count_lines
from llmctl.batch.results import encode, error_of, pending, read_checkpoint, result_line, usage_of
from llmctl.errors import LlmctlError


def ok(cid: str, prompt: int = 3, completion: int = 2) -> bytes:
    body = {"usage": {"prompt_tokens": prompt, "completion_tokens": completion}}
    return encode(result_line(f"id-{cid}", cid, 200, "r", body))


def lines_of(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def test_result_lines_have_the_openai_batch_shape() -> None:
    good = json.loads(ok("a"))
    assert set(good) == {"id", "custom_id", "response", "error"}
    assert good["response"]["status_code"] == 200 and good["error"] is None
    body = {"error": {"message": "bad max_tokens", "type": "BadRequestError", "code": 400}}
    bad = result_line("x", "b", 400, "", body, error_of(400, body))
    assert bad["error"] == {"code": "BadRequestError", "message": "bad max_tokens"}
    sglang = {"object": "error", "message": "too long", "type": "BadRequestError", "code": 400}
    assert error_of(400, sglang) == ("BadRequestError", "too long")
    assert error_of(404, "plain text") == ("http_404", "plain text")
    assert usage_of({"usage": {"prompt_tokens": 4, "completion_tokens": True}}) == (4, 0)


def test_checkpoint_counts_and_ignores_a_torn_tail() -> None:
    data = ok("a") + ok("b", 5, 7) + ok("c")[:20]
    cp = read_checkpoint(lines_of(data))
    assert set(cp.done) == {"a", "b"}
    assert (cp.succeeded, cp.input_tokens, cp.output_tokens) == (2, 8, 9)
    assert cp.keep_bytes == len(ok("a") + ok("b")) and cp.torn_bytes == 20


def test_checkpoint_reports_duplicates_and_corrupt_lines() -> None:
    cp = read_checkpoint(lines_of(ok("a") + b"garbage\n" + ok("a") + b'{"x": 1}\n'))
    assert cp.duplicates == [(3, "a")]
    assert cp.corrupt == [(2, "not valid JSON"), (4, "no custom_id")]


def test_output_file_truncates_a_torn_line_and_appends_after_it(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(ok("a") + ok("b")[:15])
    out = OutputFile(path)
    assert set(out.open().done) == {"a"}
    out.append(ok("b"))
    out.close()
    assert path.read_bytes() == ok("a") + ok("b")
    assert count_lines(path) == 2


def test_output_file_refuses_corrupt_lines_with_their_line_number(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(ok("a") + b"not json\n")
    with pytest.raises(LlmctlError, match=r"out.jsonl:2: not valid JSON"):
        OutputFile(path).open()


def test_second_writer_is_refused(tmp_path: Path) -> None:
    first = OutputFile(tmp_path / "out.jsonl")
    first.open()
    try:
        with pytest.raises(LlmctlError, match="another batch run is writing"):
            OutputFile(tmp_path / "out.jsonl").open()
    finally:
        first.close()
    OutputFile(tmp_path / "out.jsonl").open()  # free again once closed


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 40),
    runs=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 200), st.randoms()), max_size=6),
)
def test_crashes_and_resumes_never_duplicate_and_finish(n: int, runs: list[tuple[int, int, object]]) -> None:
    """Each run reads the checkpoint, cuts the torn tail, writes some of what is pending in any order, and
    crashes part-way through a line; a last run completes. The file then has every id exactly once."""
    requests = [BatchRequest(f"r{i}", "/v1/completions", {"prompt": "x"}, i + 1) for i in range(n)]
    data = b""
    for count, cut, rnd in [*runs, (n, 0, None)]:
        cp = read_checkpoint(lines_of(data))
        data = data[: cp.keep_bytes]
        todo = pending(requests, cp.done)
        if rnd is not None:
            rnd.shuffle(todo)  # type: ignore[attr-defined]
        written = b"".join(ok(r.custom_id) for r in todo[:count])
        if rnd is not None and count < len(todo):
            written += ok(todo[count].custom_id)[: cut % 50]  # the crash tears the next line
        data += written
    final = read_checkpoint(lines_of(data))
    assert final.torn_bytes == 0 and not final.duplicates and not final.corrupt
    assert sorted(final.done) == sorted(r.custom_id for r in requests)
    assert len(lines_of(data)) == n
