"""`llmctl batch` commands: malformed lines listed with file:line and skipped (or refused with --strict),
duplicates refused, the summary as JSON, a deployment found in the state store, jobs in the store."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmctl.batch import jobs
from llmctl.batch.target import engine_args, from_store
from llmctl.cli.batch import app
from llmctl.config.inventory import load_inventory
from llmctl.planning import plan_and_desired
from llmctl.state.desired import put_desired
from llmctl.state.records import ReplicaRow, put_replica
from llmctl.state.store import Store

ROOT = Path(__file__).resolve().parents[3]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # the stdlib calls it by this name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = 400 if body.get("max_tokens") == 999 else 200
        data = (
            {"error": {"message": "too many tokens", "type": "BadRequestError", "code": 400}}
            if status == 400
            else {"id": "x", "model": body["model"], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
        )
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def line(cid: str, max_tokens: int = 4) -> str:
    body = {"model": "m", "prompt": "hello", "max_tokens": max_tokens}
    return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/completions", "body": body})


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(x + "\n" for x in lines))
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_strict_refuses_malformed_lines_and_sends_nothing(tmp_path: Path, server: str) -> None:
    src = write(tmp_path / "in.jsonl", [line("a"), "{oops", line("b"), '{"custom_id": 3}'])
    with pytest.raises(Exception, match=r"in.jsonl:2: not valid JSON") as err:
        invoke("run", str(src), "-d", "dep", "-o", str(tmp_path / "out.jsonl"), "--url", server, "--strict")
    assert "in.jsonl:4: custom_id must be a non-empty string" in str(err.value)
    assert "2 malformed line(s) (--strict; nothing was sent)" in str(err.value)
    assert not (tmp_path / "out.jsonl").exists()


def test_duplicates_are_refused_with_line_numbers(tmp_path: Path, server: str) -> None:
    src = write(tmp_path / "in.jsonl", [line("a"), line("b"), line("a")])
    with pytest.raises(Exception, match=r"in.jsonl:3: custom_id 'a' already used on line 1"):
        invoke("run", str(src), "-d", "dep", "-o", str(tmp_path / "out.jsonl"), "--url", server)


def test_malformed_lines_are_skipped_listed_and_counted(tmp_path: Path, server: str) -> None:
    src = write(tmp_path / "in.jsonl", [line("a"), "{oops", line("b", 999), line("c")])
    out = tmp_path / "out.jsonl"
    code, stdout, stderr = invoke("run", str(src), "-d", "dep", "-o", str(out), "--url", server, "--json")
    assert code == 0
    assert "skipping 1 malformed line(s)" in stderr and "in.jsonl:2: not valid JSON" in stderr
    summary = json.loads(stdout)
    assert summary["malformed"] == [
        {
            "line": 2,
            "reason": "not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        }
    ]
    assert (summary["requests"], summary["succeeded"], summary["failed"], summary["skipped_malformed"]) == (
        3,
        2,
        1,
        1,
    )
    assert (summary["input_tokens"], summary["output_tokens"]) == (6, 8)
    results = {json.loads(x)["custom_id"]: json.loads(x) for x in out.read_text().splitlines()}
    assert results["b"]["error"]["message"] == "too many tokens"
    assert results["a"]["response"]["body"]["model"] == "dep"
    # a second run has nothing left to send
    code, stdout, _ = invoke("run", str(src), "-d", "dep", "-o", str(out), "--url", server, "--json")
    assert code == 0 and json.loads(stdout)["sent"] == 0 and len(out.read_text().splitlines()) == 3


def test_price_and_gpus_give_a_cost(tmp_path: Path, server: str) -> None:
    src = write(tmp_path / "in.jsonl", [line(f"r{i}") for i in range(20)])
    code, stdout, _ = invoke(
        "run",
        str(src),
        "-d",
        "dep",
        "-o",
        str(tmp_path / "o.jsonl"),
        "--url",
        server,
        "--json",
        "--gpus",
        "2",
        "--price-per-gpu-hour",
        "3.6",
    )
    s = json.loads(stdout)
    assert code == 0 and s["cost_usd"] == pytest.approx(2 * 3.6 * s["wall_s"] / 3600, rel=0.05, abs=1e-5)
    assert s["usd_per_million_tokens"] is not None


def test_unknown_deployment_without_urls_is_one_clear_error(tmp_path: Path) -> None:
    src = write(tmp_path / "in.jsonl", [line("a")])
    with pytest.raises(Exception, match=r"deployment 'nope' is not in the state store .*--url"):
        invoke(
            "run", str(src), "-d", "nope", "-o", str(tmp_path / "o.jsonl"), "--state", str(tmp_path / "s.db")
        )


def test_deployment_from_the_store_gives_urls_shape_and_price(tmp_path: Path) -> None:
    inventory = load_inventory(ROOT / "inventory/local.yaml")
    _, desired = plan_and_desired(ROOT / "playbooks/local-demo.yaml", inventory)
    enrich = next(d for d in desired if d.name == "enrich")
    store = Store(tmp_path / "s.db")
    put_desired(store, enrich)
    slot = enrich.slots[0]
    assert engine_args(slot)[0] == "Qwen/Qwen3-8B"
    row = ReplicaRow(
        slot.name, "enrich", slot.host, slot.address, "2", slot.port, 1, "ready", "h", 0.0, 0, ""
    )
    put_replica(store, row)
    target = from_store(store, "enrich", inventory)
    assert target is not None and target.in_store
    assert target.urls == [f"http://127.0.0.1:{slot.port}"]
    assert len(target.shapes) == 1 and target.shapes[0].max_seqs == 512
    assert (target.gpus, target.price_per_gpu_hour) == (1, 2.5)
    assert from_store(store, "missing", inventory) is None


def test_status_and_cancel_of_jobs(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    code, stdout, _ = invoke("status", "--state", db)
    assert code == 0 and "no batch jobs" in stdout
    with pytest.raises(Exception, match="no batch job 'batch-x'"):
        invoke("status", "batch-x", "--state", db)
    store = Store(db)
    jobs.create_job(
        store, "batch-1", "dep", tmp_path / "i", tmp_path / "o", tmp_path / "l", ["x", "--job", "batch-1"]
    )
    jobs.set_running(store, "batch-1", 2**22 + 12345)  # no such process: the job died
    code, stdout, _ = invoke("status", "batch-1", "--state", db, "--json")
    view = json.loads(stdout)
    assert view["state"] == "died" and view["command"] == ["x"]
    code, stdout, _ = invoke("cancel", "batch-1", "--state", db)
    assert code == 0 and "not running (died)" in stdout
