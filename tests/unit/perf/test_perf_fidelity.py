"""The published fidelity set (llmctl/perf/data/published.csv) and the model's error against it.

The issue-#16 targets (median |error| <= 5%, p90 <= 12%, worst <= 20%) are not all met yet: those tests are
strict xfails, so they turn into failures the day the model meets them (remove the marker then). What is met
is held by a ratchet: a factor change that makes the summary worse than it is now fails here.
"""

from __future__ import annotations

import csv
import io

import pytest

from llmctl.bench.fidelity_data import COLUMNS, load_published, parse_published, published_csv_text
from llmctl.errors import LlmctlError
from llmctl.perf.fidelity import TARGETS, PublishedPoint, predict, report_to_dict, validate

# The summary when the model was last changed (issue #16), rounded up: the ratchet. Last change: CPU/per-layer
# split of the fixed step cost, MoE kernel efficiency, the engines' custom all-reduce, per-TP bus bandwidth,
# older engine releases, SGLang's unmixed prefill: median 8.5% -> 5.1%, p90 24.5% -> 21.1%, worst 57.9% ->
# 54.9%; the TTFT rows' worst moved 16.9% -> 17.7% (SGLang 0.3.0 now pays its un-overlapped CPU step, and
# TP 4 its custom all-reduce).
RECORDED = {"median": 0.051, "p90": 0.211, "worst": 0.55, "ttft_worst": 0.178}


@pytest.fixture(scope="module")
def points() -> list[PublishedPoint]:
    return load_published()


def test_csv_is_well_formed_with_a_source_on_every_row() -> None:
    rows = list(csv.DictReader(io.StringIO(published_csv_text())))
    assert tuple(rows[0].keys()) == COLUMNS
    assert len(rows) >= 40
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["source"].strip() and r["source_detail"].strip() and r["conditions"].strip(), r["id"]
        assert float(r["value"]) > 0 and r["unit"] and r["gpu"] and int(r["tp"]) >= 1, r["id"]


def test_set_covers_what_the_issue_asks_for(points: list[PublishedPoint]) -> None:
    groups = {p.group for p in points}
    for group in (
        "decode_small_batch",
        "tp",
        "fp8",
        "moe",
        "speculative",
        "offline_throughput",
        "ttft",
        "kernel_gemm",
        "kernel_allreduce",
    ):
        assert group in groups
    assert {1, 2, 4, 8} <= {p.tp for p in points}
    assert {"bf16", "fp8"} <= {p.weight_dtype for p in points}
    assert len({p.gpu for p in points}) >= 2
    assert any(p.batch and p.batch >= 64 for p in points if p.metric in ("e2e_latency_s", "cpu_step_ms"))


def test_every_row_is_predictable(points: list[PublishedPoint]) -> None:
    for p in points:
        value = predict(p)
        assert value > 0 and value == value, p.id  # positive and not NaN


def test_summary_stays_within_what_was_recorded(points: list[PublishedPoint]) -> None:
    report = validate(points)
    assert report.overall.median <= RECORDED["median"]
    assert report.overall.p90 <= RECORDED["p90"]
    assert report.overall.worst <= RECORDED["worst"]
    assert report.ttft is not None and report.ttft.worst <= RECORDED["ttft_worst"]


def test_ttft_points_are_within_target(points: list[PublishedPoint]) -> None:
    report = validate(points)
    assert report.ttft is not None and report.ttft.worst <= TARGETS["ttft_worst"]


@pytest.mark.xfail(
    strict=True,
    reason="issue #16 targets not met yet: moe (vLLM 2024-01 TP8), SGLang 0.3.0 offline ShareGPT and TP4 rows",
)
def test_summary_meets_the_issue_targets(points: list[PublishedPoint]) -> None:
    report = validate(points)
    assert report.overall.median <= TARGETS["median"]
    assert report.overall.p90 <= TARGETS["p90"]
    assert report.overall.worst <= TARGETS["worst"]


def test_kernel_groups_fit_closely(points: list[PublishedPoint]) -> None:
    """The factors taken from Vidur's kernel profiles reproduce them: GEMMs and large all-reduces."""
    report = validate(points)
    assert report.groups["kernel_gemm"].median <= 0.05 and report.groups["kernel_gemm"].worst <= 0.16
    assert (
        report.groups["kernel_allreduce"].median <= 0.05 and report.groups["kernel_allreduce"].worst <= 0.25
    )


def test_overrides_reach_every_prediction(points: list[PublishedPoint]) -> None:
    gemm = next(p for p in points if p.id.endswith("tp1-n1") and p.gpu == "H100-SXM")
    slower = predict(gemm, {"hbm_efficiency": 0.5})
    assert slower > predict(gemm) * 1.4


def test_report_is_plain_data(points: list[PublishedPoint]) -> None:
    data = report_to_dict(validate(points))
    assert len(data["rows"]) == len(points) and set(data["targets_met"]) >= {"median", "p90", "worst"}  # type: ignore[arg-type]


def test_bad_rows_are_named() -> None:
    header = ",".join(COLUMNS)
    row = "x,g,ttft_ms,-1,ms,vllm,,,H100-SXM,1,bf16,bf16,,,,,,,c,s,d"
    with pytest.raises(LlmctlError, match=r"published.csv:2: value must be a positive"):
        parse_published(f"{header}\n{row}\n")
    with pytest.raises(LlmctlError, match="missing source"):
        parse_published(f"{header}\n" + "x,g,ttft_ms,1,ms,vllm,,,H100-SXM,1,bf16,bf16,,,,,,,c,,d\n")
    with pytest.raises(LlmctlError, match="unknown metric"):
        parse_published(f"{header}\n" + "x,g,nope,1,ms,vllm,,,H100-SXM,1,bf16,bf16,,,,,,,c,s,d\n")
