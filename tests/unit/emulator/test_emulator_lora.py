"""LoRA adapters in the emulated engine: the flags, vLLM's and SGLang's load/unload endpoints and their
answers, /v1/models cards, requests naming an adapter, the LRU adapter cache and the load time."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from llmctl.catalog.models import Model, find_model
from llmctl.engines.emulator.config import ConfigError, parse_config
from llmctl.engines.emulator.lora import LOAD_OVERHEAD_S, AdapterCache, AdapterFiles, LoraSettings
from llmctl.perf.cold_start import NVME_READ_BANDWIDTH
from llmctl.planner.lora import adapter_bytes

Factory = Callable[..., Coroutine[Any, Any, TestClient[Any, Any]]]
BASE = ["meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "chat", "--max-model-len", "4096"]
RUNTIME = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1"}


def llama() -> Model:
    model = find_model("meta-llama/Llama-3.1-8B-Instruct")
    assert model is not None
    return model


def adapter_dir(root: Path, name: str, rank: int = 8, weights: int = 4096) -> str:
    """A PEFT-layout adapter directory: adapter_config.json and a weights file of `weights` bytes."""
    d = root / name
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    (d / "adapter_model.safetensors").write_bytes(b"\0" * weights)
    return str(d)


def test_flags_parse_as_each_engine_reads_them(tmp_path: Path) -> None:
    sql = adapter_dir(tmp_path, "sql")
    v = parse_config("vllm", [*BASE, "--enable-lora", "--max-loras", "2", "--lora-modules", f"sql={sql}"], {})
    assert v.lora is not None and v.lora.static == (("sql", sql),)
    assert (v.lora.max_loras, v.lora.max_cached, v.lora.max_rank, v.lora.runtime_updates) == (2, 2, 16, False)
    module = json.dumps({"name": "sql", "path": sql, "base_model_name": "chat"})
    v = parse_config("vllm", [*BASE, "--enable-lora", "--lora-modules", module], RUNTIME)
    assert v.lora is not None and v.lora.static == (("sql", sql),) and v.lora.runtime_updates
    assert parse_config("vllm", BASE, {}).lora is None
    s = parse_config("sglang", ["--model-path", "Qwen/Qwen3-8B", "--lora-paths", sql], {})
    assert s.lora is not None and s.lora.static == ((sql, sql),) and s.lora.max_loras == 8  # implied by paths
    # vLLM loads its --lora-modules before it serves: one that is not there stops it, in its words.
    with pytest.raises(ConfigError, match="Loading lora gone failed: No adapter found for /nowhere/gone"):
        parse_config("vllm", [*BASE, "--enable-lora", "--lora-modules", "gone=/nowhere/gone"], {})


async def test_vllm_load_list_request_unload(emulator: Factory, tmp_path: Path) -> None:
    sql, legal = adapter_dir(tmp_path, "sql"), adapter_dir(tmp_path, "legal", rank=64)
    client = await emulator("vllm", [*BASE, "--enable-lora", "--lora-modules", f"sql={sql}"], RUNTIME)
    models = (await (await client.get("/v1/models")).json())["data"]
    assert [(m["id"], m["parent"], m["root"]) for m in models] == [
        ("chat", None, "meta-llama/Llama-3.1-8B-Instruct"),
        ("sql", "chat", sql),
    ]
    done = await client.post("/v1/completions", json={"model": "sql", "prompt": "hi", "max_tokens": 2})
    assert done.status == 200 and (await done.json())["model"] == "sql"  # vLLM answers as the adapter
    missing = await client.post("/v1/completions", json={"model": "legal", "prompt": "hi"})
    assert missing.status == 404 and "`legal` does not exist" in (await missing.json())["error"]["message"]
    # Rank 64 is over the default --max-lora-rank 16: refused as vLLM's add_lora does.
    too_big = await client.post("/v1/load_lora_adapter", json={"lora_name": "legal", "lora_path": legal})
    assert (
        too_big.status == 500
        and "greater than max_lora_rank 16" in (await too_big.json())["error"]["message"]
    )
    small = adapter_dir(tmp_path, "small")
    loaded = await client.post("/v1/load_lora_adapter", json={"lora_name": "small", "lora_path": small})
    assert loaded.status == 200 and await loaded.text() == "Success: LoRA adapter 'small' added successfully."
    again = await client.post("/v1/load_lora_adapter", json={"lora_name": "small", "lora_path": small})
    assert again.status == 400 and (await again.json())["error"]["type"] == "InvalidUserInput"
    base = await client.post("/v1/load_lora_adapter", json={"lora_name": "chat", "lora_path": small})
    assert "conflicts with a served base model" in (await base.json())["error"]["message"]
    nowhere = await client.post("/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "/no/such"})
    assert nowhere.status == 404
    assert (await nowhere.json())["error"][
        "message"
    ] == "Loading lora x failed: No adapter found for /no/such"
    served = await client.post(
        "/v1/chat/completions", json={"model": "small", "messages": [{"role": "user", "content": "q"}]}
    )
    assert served.status == 200
    gone = await client.post("/v1/unload_lora_adapter", json={"lora_name": "small"})
    assert await gone.text() == "Success: LoRA adapter 'small' removed successfully."
    twice = await client.post("/v1/unload_lora_adapter", json={"lora_name": "small"})
    assert (
        twice.status == 404
        and (await twice.json())["error"]["message"] == "The lora adapter 'small' cannot be found."
    )
    assert [m["id"] for m in (await (await client.get("/v1/models")).json())["data"]] == ["chat", "sql"]


async def test_vllm_serves_no_load_endpoint_without_the_variable(emulator: Factory, tmp_path: Path) -> None:
    client = await emulator("vllm", [*BASE, "--enable-lora"])
    body = {"lora_name": "a", "lora_path": adapter_dir(tmp_path, "a")}
    assert (await client.post("/v1/load_lora_adapter", json=body)).status == 404


async def test_sglang_names_an_adapter_as_base_colon_adapter(emulator: Factory, tmp_path: Path) -> None:
    args = ["--model-path", "Qwen/Qwen3-8B", "--served-model-name", "chat", "--enable-lora"]
    client = await emulator("sglang", args)
    path = adapter_dir(tmp_path, "sql")
    loaded = await client.post("/load_lora_adapter", json={"lora_name": "sql", "lora_path": path})
    body = await loaded.json()
    assert loaded.status == 200 and body["success"] and body["loaded_adapters"] == {"sql": path}
    done = await client.post("/v1/completions", json={"model": "chat:sql", "prompt": "hi", "max_tokens": 2})
    assert done.status == 200
    other = await client.post("/v1/completions", json={"model": "chat:nope", "prompt": "hi"})
    assert other.status == 400
    gone = await client.post("/unload_lora_adapter", json={"lora_name": "sql"})
    assert (await gone.json())["loaded_adapters"] == {}


def test_cache_evicts_least_recently_used_and_reloads_from_disk() -> None:
    settings = LoraSettings(max_loras=1, max_cached=2, max_rank=16, static=(), runtime_updates=True)
    cache = AdapterCache(settings, llama())
    for name in "abc":
        cache.registered[name] = cache.describe(name, AdapterFiles(name, 16, 25_000_000))
    load_s = LOAD_OVERHEAD_S + 25_000_000 / NVME_READ_BANDWIDTH
    assert cache.use("a", 0.0) == pytest.approx(load_s)  # registered but never loaded: read from disk
    assert cache.use("a", 0.001) == pytest.approx(load_s - 0.001)  # the same load, still under way
    assert cache.use("b", 1.0) == pytest.approx(load_s)
    assert cache.use("a", 2.0) == 0.0  # resident, now the most recently used
    assert cache.use("c", 3.0) == pytest.approx(load_s)  # evicts b, the least recently used
    assert cache.resident() == ("a", "c") and cache.evictions == 1
    assert cache.use("b", 4.0) == pytest.approx(load_s) and cache.loads == 4


def test_load_time_without_files_comes_from_the_rank() -> None:
    model = llama()
    cache = AdapterCache(LoraSettings(1, 1, 16, (), True), model)
    described = cache.describe("hub", AdapterFiles("org/adapter", None, None))
    # Rank 16 on every linear layer of Llama-3.1-8B in bf16: about 84 MB, ~34 ms at 2.5 GB/s, plus 15 ms.
    assert adapter_bytes(model, 16) == pytest.approx(83.9e6, rel=0.01)
    assert described.load_s == pytest.approx(LOAD_OVERHEAD_S + adapter_bytes(model, 16) / NVME_READ_BANDWIDTH)
