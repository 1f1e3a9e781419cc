"""Load the published fidelity set (llmctl/perf/data/published.csv) into `PublishedPoint`s.

The edge half of `llmctl perf validate`: file access (importlib.resources, so an installed package finds the
CSV) and parsing with row:column errors; prediction and summary are pure, in llmctl.perf.fidelity.
"""

from __future__ import annotations

import csv
import io
from importlib import resources
from pathlib import Path

from llmctl.errors import LlmctlError
from llmctl.perf.fidelity import METRICS, PublishedPoint

COLUMNS = (
    "id",
    "group",
    "metric",
    "value",
    "unit",
    "engine",
    "engine_version",
    "model",
    "gpu",
    "tp",
    "weight_dtype",
    "kv_dtype",
    "batch",
    "input_len",
    "output_len",
    "message_bytes",
    "request_rate",
    "spec",
    "conditions",
    "source",
    "source_detail",
)
REQUIRED = ("id", "group", "metric", "value", "unit", "engine", "gpu", "tp", "source")


def published_csv_text() -> str:
    """The packaged published set."""
    return resources.files("llmctl.perf").joinpath("data/published.csv").read_text(encoding="utf-8")


def _int(text: str, where: str) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise LlmctlError(f"{where}: expected an integer, got {text!r}") from None


def _float(text: str, where: str) -> float | None:
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise LlmctlError(f"{where}: expected a number, got {text!r}") from None


def parse_published(text: str, source: str = "published.csv") -> list[PublishedPoint]:
    """Rows of a published-set CSV; every row needs an id, a value, conditions' keys and a source."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or tuple(reader.fieldnames) != COLUMNS:
        raise LlmctlError(f"{source}: expected columns {','.join(COLUMNS)}, got {reader.fieldnames}")
    points: list[PublishedPoint] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        where = f"{source}:{line}"
        missing = [c for c in REQUIRED if not (row.get(c) or "").strip()]
        if missing:
            raise LlmctlError(f"{where}: missing {', '.join(missing)}")
        if row["id"] in seen:
            raise LlmctlError(f"{where}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        if row["metric"] not in METRICS:
            raise LlmctlError(f"{where}: unknown metric {row['metric']!r}; known: {', '.join(METRICS)}")
        value = _float(row["value"], f"{where}:value")
        tp = _int(row["tp"], f"{where}:tp")
        if value is None or value <= 0 or tp is None:
            raise LlmctlError(f"{where}: value must be a positive number and tp an integer")
        points.append(
            PublishedPoint(
                id=row["id"],
                group=row["group"],
                metric=row["metric"],
                value=value,
                unit=row["unit"],
                engine=row["engine"],
                engine_version=row["engine_version"],
                model=row["model"],
                gpu=row["gpu"],
                tp=tp,
                weight_dtype=row["weight_dtype"],
                kv_dtype=row["kv_dtype"],
                source=row["source"],
                source_detail=row["source_detail"],
                conditions=row["conditions"],
                batch=_int(row["batch"], f"{where}:batch"),
                input_len=_int(row["input_len"], f"{where}:input_len"),
                output_len=_int(row["output_len"], f"{where}:output_len"),
                message_bytes=_int(row["message_bytes"], f"{where}:message_bytes"),
                request_rate=_float(row["request_rate"], f"{where}:request_rate"),
                spec=row["spec"],
            )
        )
    return points


def load_published(path: Path | None = None) -> list[PublishedPoint]:
    """The packaged set, or a CSV of the same columns at `path`."""
    if path is None:
        return parse_published(published_csv_text())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LlmctlError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_published(text, str(path))
