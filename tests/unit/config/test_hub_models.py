"""A model id outside the catalog resolves from its Hugging Face config.json: read from a cache laid out as
huggingface_hub lays it out (HF_HOME, tests/unit/conftest.py), or from a stubbed download; and every way it
cannot be had is one line naming the playbook line. No test here reaches the network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import errors

from llmctl.config import hub
from llmctl.config.models import resolve_model, resolve_models
from llmctl.config.playbook import parse_playbook
from llmctl.config.source import parse_yaml
from llmctl.errors import ConfigError, LlmctlError
from llmctl.perf.memory import weight_bytes

SeedHub = Any


def test_a_hub_id_resolves_from_the_cache_with_the_index_size(seed_hub: SeedHub, tmp_path: Path) -> None:
    seed_hub("openai/gpt-oss-120b", "openai__gpt-oss-120b", total_size=65_249_422_592)
    model = resolve_model("openai/gpt-oss-120b", tmp_path)
    assert model.name == "openai/gpt-oss-120b" and model.num_experts == 128
    assert model.quantization == "mxfp4" and weight_bytes(model, "bf16") == 65_249_422_592


def test_without_an_index_the_size_is_estimated(seed_hub: SeedHub, tmp_path: Path) -> None:
    seed_hub("meta-llama/Llama-3.1-405B-Instruct", "meta-llama__Meta-Llama-3.1-405B")
    model = resolve_model("meta-llama/Llama-3.1-405B-Instruct", tmp_path)
    assert model.checkpoint_bytes is None and model.num_params == pytest.approx(405e9, rel=0.02)


def test_the_catalog_answers_first_without_the_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_hub(*_: object, **__: object) -> str:
        raise AssertionError("the catalog is a cache: a known model never reaches the hub")

    monkeypatch.setattr(hub, "_download", no_hub)
    assert resolve_model("Qwen/Qwen3-8B", tmp_path).num_layers == 36


def test_hf_token_is_passed_for_gated_repos(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    config = Path(__file__).resolve().parents[1] / "catalog" / "fixtures" / "Qwen__Qwen3-235B-A22B.json"

    def fake_download(repo_id: str, filename: str, **kw: Any) -> str:
        seen[filename] = kw
        if filename != "config.json":
            raise errors.RemoteEntryNotFoundError("404 index", response=None)  # type: ignore[arg-type]
        return str(config)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    model = resolve_model("Qwen/Qwen3-235B-A22B", tmp_path)
    assert model.num_experts == 128 and model.checkpoint_bytes is None
    assert seen["config.json"]["token"] == "hf_test" and seen["config.json"]["local_files_only"] is False


def _raise(exc: Exception) -> Any:
    def download(*_: object, **__: object) -> str:
        raise exc

    return download


class _Response:
    status_code = 403
    headers: dict[str, str] = {}  # noqa: RUF012
    request = None


@pytest.mark.parametrize(
    ("exc", "token", "reason"),
    [
        (
            errors.GatedRepoError("gated", response=_Response()),
            None,
            "is gated on the Hugging Face Hub: accept",
        ),
        (errors.GatedRepoError("gated", response=_Response()), "hf_x", "has not been granted access"),
        (errors.RepositoryNotFoundError("404", response=_Response()), None, "no repository acme/nope on the"),
        (errors.LocalEntryNotFoundError("no cache"), None, "cannot be reached and acme/nope/config.json"),
        (ConnectionError("reset"), None, "cannot be reached for acme/nope: reset"),
        (ValueError("odd"), None, "failed: ValueError: odd"),
    ],
)
def test_each_failure_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exc: Exception, token: str | None, reason: str
) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _raise(exc))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    with pytest.raises(LlmctlError) as info:
        resolve_model("acme/nope", tmp_path)
    assert str(info.value).startswith("unknown model 'acme/nope': ") and reason in str(info.value)
    assert "\n" not in str(info.value)


def test_offline_and_not_cached_names_the_playbook_line(seed_hub: SeedHub) -> None:
    text = "deployments:\n  - name: c\n    model: acme/not-cached\n    workload: online\n"
    data, lines = parse_yaml(text, "pb.yaml")
    with pytest.raises(ConfigError) as info:
        resolve_models(parse_playbook(data, lines), lines)
    assert info.value.line == 3 and str(info.value).startswith(
        "pb.yaml:3: deployments[0].model: unknown model"
    )
    assert "not in the Hugging Face cache and HF_HUB_OFFLINE=1" in str(info.value)


@pytest.mark.parametrize("name", ["./missing-dir", "/abs/missing", "a/b/c", "config.json", "no-slash"])
def test_paths_are_not_asked_of_the_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> None:
    monkeypatch.setattr(hub, "_download", _raise(AssertionError("a path is not a repo id")))
    with pytest.raises(LlmctlError, match="not a Hugging Face repository id"):
        resolve_model(name, tmp_path)


def test_a_cached_config_that_is_not_json_is_reported(seed_hub: SeedHub, tmp_path: Path) -> None:
    snapshot = seed_hub("acme/broken", "openai__gpt-oss-20b")
    (snapshot / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(
        LlmctlError, match=r"acme/broken/config\.json from the Hugging Face Hub is not readable"
    ):
        resolve_model("acme/broken", tmp_path)


def test_a_local_checkpoint_index_gives_the_exact_size(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[1] / "catalog" / "fixtures" / "Qwen__Qwen2.5-7B-Instruct.json"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_bytes(src.read_bytes())
    (tmp_path / "m" / "model.safetensors.index.json").write_text('{"metadata": {"total_size": 15231233024}}')
    assert weight_bytes(resolve_model("m", tmp_path), "bf16") == 15231233024
