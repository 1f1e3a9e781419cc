"""FlagSpec.validate on the packaged snapshots: each flag kind accepted or refused as the engine would."""

from __future__ import annotations

import pytest

from llmctl.engines.flagspec import FlagProblem, FlagSpec
from llmctl.engines.snapshots import load_flagspec

MODEL = "meta-llama/Llama-3.1-8B"


@pytest.fixture(scope="module")
def vllm() -> FlagSpec:
    return load_flagspec("vllm")


@pytest.fixture(scope="module")
def sglang() -> FlagSpec:
    return load_flagspec("sglang")


def problems(spec: FlagSpec, *argv: str) -> list[str]:
    if spec.engine == "sglang" and "--model-path" not in argv and "--model" not in argv:
        argv = ("--model-path", "m", *argv)
    return [str(p) for p in spec.validate(list(argv))]


def test_clean_vllm_argv(vllm: FlagSpec) -> None:
    argv = [MODEL, "--tensor-parallel-size", "2", "--max-num-seqs", "512", "--gpu-memory-utilization", "0.9"]
    assert vllm.validate(argv) == []


def test_unknown_flag_suggests_closest_and_reads_well(vllm: FlagSpec) -> None:
    found = vllm.validate([MODEL, "--tensor-paralel-size", "2"])
    assert found == [
        FlagProblem("--tensor-paralel-size", None, "unknown flag for vllm 0.33.0", "--tensor-parallel-size")
    ]
    assert str(found[0]) == (
        "--tensor-paralel-size: unknown flag for vllm 0.33.0 (did you mean --tensor-parallel-size?)"
    )


def test_abbreviations_are_refused(vllm: FlagSpec, sglang: FlagSpec) -> None:
    (p,) = vllm.validate([MODEL, "--max-num-seq", "4"])
    assert "abbreviations are not accepted" in p.problem and p.suggestion == "--max-num-seqs"
    assert problems(sglang, "--tp", "2")[0].startswith("--tp: unknown flag for sglang 0.5.23")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--max-num-seqs", "many"], "expected an integer, got 'many'"),
        (["--max-num-seqs", "2.5"], "expected an integer"),
        (["--gpu-memory-utilization", "most"], "expected a number"),
        (["--max-num-seqs"], "expected a value"),
        (["--max-num-seqs", "--enforce-eager"], "expected a value"),
        (["--chat-template-content-format", "xml"], "invalid choice 'xml'"),
        (["--log-level", "info"], "invalid choice 'info'"),
        (["--enforce-eager=true"], "is a switch and takes no value"),
        (["--cudagraph-capture-sizes"], "expected at least one value"),
        (["--cudagraph-capture-sizes", "1", "two"], "expected an integer, got 'two'"),
        (["--speculative-config", "eagle3"], "expected JSON"),
        (["--speculative-config", "[1, 2]"], "expected a JSON object"),
        (["--compilation-config", '{"mode": 3'], "expected JSON"),
        (["--allowed-origins", '{"a": 1}'], "expected a JSON array"),
        (["--hf-overrides", "{not json}"], "expected JSON"),
        (["--max-model-len", "1.5K"], "decimals are not allowed"),
        (["--max-model-len", "lots"], "expected an integer or 32k"),
        (["--max-num-seqs.limit", "3"], "only JSON config flags take dotted keys"),
        (["--speculative-config.method"], "expected a value"),
        (["--speculative-confg.method", "eagle3"], "unknown flag"),
        ([MODEL, "extra"], "unexpected positional argument"),
    ],
)
def test_vllm_refuses(vllm: FlagSpec, argv: list[str], fragment: str) -> None:
    found = problems(vllm, *argv)
    assert found, argv
    assert fragment in found[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--max-model-len", "32k"],
        ["--max-model-len", "32K"],
        ["--max-model-len", "auto"],
        ["--max-model-len", "-1"],
        ["--max-model-len=131072"],
        ["-tp", "2"],
        ["-tp=2"],
        ["--tensor_parallel_size", "2"],
        ["--device-memory-utilization", "0.5"],
        ["--enable-prefix-caching"],
        ["--disable-prefix-caching"],
        ["--no-enforce-eager"],
        ["--enable-expert-parallel", "-ep", "--disable-expert-parallel"],
        ["--hf-token"],
        ["--hf-token", "hf_abc"],
        ["--api-key", "k1", "k2"],
        ["--middleware", "a.b", "--middleware", "c.d"],
        ["--tool-strict-level", "None"],
        ["--tool-strict-level", "function"],
        ["--speculative-config", '{"method":"eagle3","model":"d","num_speculative_tokens":3}'],
        ["--speculative-config", "None"],
        ["-sc", '{"method": "eagle3"}'],
        ["--speculative-config.method", "eagle3", "--speculative-config.num_speculative_tokens", "3"],
        ["--speculative-config.method=eagle3"],
        ["--compilation-config.cudagraph_capture_sizes+", "1,2,4"],
        ["--hf-overrides", "some-string"],
        ["--hf-overrides", '{"rope_scaling": {"factor": 4}}'],
        ["--allowed-origins", '["*"]'],
        ["-O3"],
        ["-O", "3"],
        ["--cudagraph-capture-sizes", "1", "2", "4"],
        ["--moe-backend", "auto"],
        ["--", MODEL],
    ],
)
def test_vllm_accepts(vllm: FlagSpec, argv: list[str]) -> None:
    full = argv if "--" in argv else [MODEL, *argv]
    assert [str(p) for p in vllm.validate(full)] == []


def test_model_positional_may_come_anywhere(vllm: FlagSpec) -> None:
    assert vllm.validate(["--enforce-eager", MODEL, "--port", "8001"]) == []
    assert vllm.validate(["--port", "8001"]) == []  # model_tag is nargs='?'; vLLM falls back to --model


def test_switch_given_false_suggests_negation(vllm: FlagSpec) -> None:
    (p,) = vllm.validate([MODEL, "--enable-prefix-caching=false"])
    assert p.suggestion == "--disable-prefix-caching"
    (p,) = vllm.validate([MODEL, "--enforce-eager=0"])
    assert p.suggestion == "--no-enforce-eager"


def test_invalid_choice_suggests_closest(sglang: FlagSpec) -> None:
    (p,) = sglang.validate(["--model-path", "m", "--kv-cache-dtype", "fp8_e4m4"])
    assert p.value == "fp8_e4m4" and p.suggestion == "fp8_e4m3"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "--model-path: required by sglang 0.5.23 but missing"),
        (["--context-length", "32K"], "case-sensitive, got '32K'"),
        (["--context-length", "1.5Ki"], "decimals are not allowed"),
        (["--tp-size", "two"], "expected an integer"),
        (["--enable-metrics=yes"], "takes no value"),
        (["--no-enable-metrics"], "unknown flag"),
        (["--speculative-config.method", "x"], "unknown flag"),
        (["--sidecar-args", '{"a": 1}'], "expected a JSON array"),
        (["--preferred-sampling-params", "temp=1"], "expected JSON"),
        (["--kv-cache-dtype", "fp9"], "invalid choice"),
        (["--lora-target-modules", "q_proj", "z_proj"], "invalid choice 'z_proj'"),
        (["model-name"], "unexpected positional argument for sglang 0.5.23 (it has none)"),
        (["--tp-size", "2", "4"], "unexpected positional argument"),
    ],
)
def test_sglang_refuses(sglang: FlagSpec, argv: list[str], fragment: str) -> None:
    found = problems(sglang, *argv) if argv else [str(p) for p in sglang.validate([])]
    assert found and fragment in found[0], found


@pytest.mark.parametrize(
    "argv",
    [
        ["--model", "m"],
        ["--model-path=m", "--host", "0.0.0.0", "--port", "30000"],
        ["--model-path", "m", "--context-length", "32k"],
        ["--model-path", "m", "--context-length", "32Ki"],
        ["--model-path", "m", "--context-length", "1.5k"],
        ["--model-path", "m", "--tensor-parallel-size", "2"],
        ["--model-path", "m", "--ep", "8"],
        ["--model-path", "m", "--enable-tf32-matmul", "--no-enable-tf32-matmul"],
        ["--model-path", "m", "--uvicorn-access-log-exclude-prefixes"],
        ["--model-path", "m", "--uvicorn-access-log-exclude-prefixes", "/metrics", "/health"],
        ["--model-path", "m", "--model-checksum"],
        ["--model-path", "m", "--model-checksum", "abc"],
        ["--model-path", "m", "--lora-target-modules", "q_proj", "v_proj"],
        ["--model-path", "m", "--sidecar-args", '["--x", "1"]'],
        ["--model-path", "m", "--json-model-override-args", '{"a": 1}'],
        ["--model-path", "m", "--monokernel-backend", "amd"],
    ],
)
def test_sglang_accepts(sglang: FlagSpec, argv: list[str]) -> None:
    assert [str(p) for p in sglang.validate(argv)] == []


def test_problem_value_and_order(vllm: FlagSpec) -> None:
    found = vllm.validate([MODEL, "--port", "http", "--bogus", "--max-num-seqs", "x"])
    assert [(p.flag, p.value) for p in found] == [
        ("--port", "http"),
        ("--bogus", None),
        ("--max-num-seqs", "x"),
    ]


def test_from_snapshot_rejects_bad_counts() -> None:
    flag: dict[str, object] = {
        "flag": "--a", "aliases": [], "dest": "a", "action": "_StoreAction", "type": "int",
        "nargs": None, "default": None, "choices": None, "required": False,
    }  # fmt: skip
    spec = FlagSpec.from_snapshot({"engine": "x", "version": "1", "n_flags": 1, "flags": [flag]})
    assert spec.validate(["--a", "1"]) == []
    with pytest.raises(ValueError, match="n_flags=2"):
        FlagSpec.from_snapshot({"engine": "x", "version": "1", "n_flags": 2, "flags": [flag]})
    with pytest.raises(ValueError, match="malformed"):
        FlagSpec.from_snapshot({"engine": "x", "flags": []})
