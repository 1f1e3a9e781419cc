"""Print, for each published config.json in tests/unit/catalog/fixtures, the parameter counts and KV bytes per
token llmctl derives, and which TP fits an online deployment on 8x H100-SXM and 8x H200 (the planner's own
shape_replica, TP auto). No network: the configs are the test fixtures.

    .venv/bin/python scripts/model_fit_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

from llmctl.catalog.gpus import GPUS
from llmctl.catalog.hf_config import model_from_hf_config
from llmctl.catalog.models import Model
from llmctl.config.playbook import parse_playbook
from llmctl.config.source import parse_yaml
from llmctl.perf.memory import kv_bytes_per_token
from llmctl.planner.shape import DoesNotFit, shape_replica

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "unit" / "catalog" / "fixtures"
CONTEXT = 8192  # the online preset's max_context: the length sliding-window layers are counted at


def _fit(model: Model, gpu: str) -> str:
    text = f"deployments:\n  - {{name: d, model: {model.name}, workload: online, engine: vllm}}\n"
    data, lines = parse_yaml(text, "table.yaml")
    dep = parse_playbook(data, lines).deployments[0]
    try:
        shape = shape_replica(dep, model, GPUS[gpu], 8)
    except DoesNotFit:
        return "no (8 GPUs)"
    weights = (
        f"{model.quantization} ckpt" if model.quantization else shape.quantization.replace("none", "bf16")
    )
    return f"TP {shape.tp} {weights}"


def main() -> None:
    rows = []
    for path in sorted(FIXTURES.glob("*.json")):
        model = model_from_hf_config(
            path.stem.replace("__", "/"), json.loads(path.read_text(encoding="utf-8"))
        )
        active = f"{model.params_per_token / 1e9:.1f}B" if model.is_moe else "-"
        kv = kv_bytes_per_token(model, "bf16", 1, CONTEXT)
        rows.append(
            (
                model.name,
                f"{model.num_params / 1e9:.1f}B",
                active,
                f"{kv:,.0f}",
                _fit(model, "H100-SXM"),
                _fit(model, "H200"),
            )
        )
    head = ("model", "params", "active", f"KV B/token bf16 @{CONTEXT}", "8x H100-SXM", "8x H200")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
