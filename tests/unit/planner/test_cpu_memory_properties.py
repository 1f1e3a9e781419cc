"""Property: a CPU replica's KV cache, weights, overheads and headroom never exceed the host's memory, the KV
cache is every whole GiB that is left, and the start-up memory share covers what the replica needs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llmctl.catalog.gpus import GiB, cpu_device
from llmctl.catalog.models import Model, estimate_params
from llmctl.config.playbook import Deployment
from llmctl.engines import vllm
from llmctl.perf.memory import FIXED_OVERHEAD_BYTES, activation_bytes, cpu_headroom_bytes
from llmctl.planner.cpu import shape_cpu_replica
from llmctl.planner.shape import DoesNotFit


@st.composite
def models(draw: st.DrawFn) -> Model:
    kv_heads = draw(st.sampled_from([1, 2, 4, 8]))
    heads = kv_heads * draw(st.sampled_from([1, 2, 4, 8]))
    head_dim = draw(st.sampled_from([64, 128]))
    hidden = heads * head_dim
    layers = draw(st.integers(1, 96))
    inter = hidden * draw(st.integers(2, 4))
    vocab = draw(st.sampled_from([512, 32000, 151936]))
    return Model(
        name="local/model",
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=inter,
        vocab_size=vocab,
        num_params=estimate_params(layers, hidden, heads, kv_heads, head_dim, inter, vocab),
        max_context=32768,
    )


@settings(max_examples=300, deadline=None)
@given(
    model=models(),
    memory_gib=st.integers(1, 1024),
    cores=st.integers(1, 256),
    workload=st.sampled_from(["offline", "online", "semi-online"]),
    max_context=st.sampled_from([256, 2048, 8192, 32768]),
    concurrency=st.integers(1, 64),
)
def test_kv_weights_and_headroom_fit_in_host_memory(
    model: Model, memory_gib: int, cores: int, workload: str, max_context: int, concurrency: int
) -> None:
    device = cpu_device(cores, memory_gib * GiB)
    host = float(device.memory_bytes)
    dep = Deployment.model_validate(
        {
            "name": "chat",
            "model": model.name,
            "workload": workload,
            "engine": "vllm",
            "serving": {"max_context": max_context, "concurrency": concurrency},
        }
    )
    try:
        shape = shape_cpu_replica(dep, model, device)
    except DoesNotFit as exc:
        assert "does not fit on a CPU host" in str(exc)
        return
    kv = shape.kv_gib_per_gpu * GiB
    weights = shape.weights_gib_per_gpu * GiB
    used = next(d for d in shape.decisions if d.what == "memory utilisation")
    assert shape.kv_gib_per_gpu == int(shape.kv_gib_per_gpu) >= 1
    assert vllm.env(shape)[vllm.CPU_KV_ENV] == str(int(shape.kv_gib_per_gpu))
    overheads = activation_bytes(model, shape.max_batched_tokens, 1) + FIXED_OVERHEAD_BYTES
    headroom = cpu_headroom_bytes(host)
    assert kv + weights + headroom <= kv + weights + overheads + headroom <= host
    assert shape.kv_capacity_tokens >= max_context * concurrency
    # The start-up share covers the replica and stays below the whole host.
    assert 0.05 <= shape.memory_fraction <= 1.0 and used.choice.endswith(f"{shape.memory_fraction:g}")
    assert shape.memory_fraction * host >= kv + weights + overheads - 1.0  # (float rounding)
    # No whole GiB is left unused: one more would eat into the headroom.
    assert kv + GiB + weights + overheads + headroom > host
