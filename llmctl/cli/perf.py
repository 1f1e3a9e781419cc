"""`llmctl perf`: show what the performance model predicts for a profile, and calibrate it from measurements."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from llmctl.bench.profile_file import (
    load_profile_file,
    profile_file_data,
    resolve_named_profile,
    write_profile_file,
)
from llmctl.cli.output import console, err_console, print_json
from llmctl.cli.perf_heldout import heldout_command
from llmctl.cli.perf_validate import validate_command
from llmctl.config.models import resolve_model
from llmctl.errors import LlmctlError
from llmctl.perf.calibrate import (
    BenchmarkLevel,
    fit_factors,
    parse_points_csv,
    points_from_benchmark,
    points_to_csv,
)
from llmctl.perf.profile import Profile, make_profile
from llmctl.perf.report import perf_report
from llmctl.perf.speculative import SpecConfig, engine_spec

app = typer.Typer(
    help="Performance model: step time, throughput, KV capacity, cold start; calibration.",
    no_args_is_help=True,
)

app.command("validate")(validate_command)
app.command("heldout")(heldout_command)

PROFILE_ARG = typer.Argument(
    None,
    help="engine/model/gpu/dtype/tpN, e.g. vllm/meta-llama/Llama-3.1-8B-Instruct/H100-SXM/fp8/tp1; a CPU host "
    "is CPU-x86-AVX512-<cores>c[-<GiB>GiB], e.g. vllm/Qwen/Qwen3-8B/CPU-x86-AVX512-32c-192GiB/bf16/tp1",
)
ENGINE_OPT = typer.Option(None, "--engine", help="vllm or sglang (default vllm)")
MODEL_OPT = typer.Option(
    None,
    "--model",
    help="catalog model name or Hugging Face id, or a local model directory (its config.json)",
)
GPU_OPT = typer.Option(
    None, "--gpu", help="catalog GPU name, e.g. H100-SXM, or a CPU host: CPU-x86-AVX512-<cores>c[-<GiB>GiB]"
)
DTYPE_OPT = typer.Option(None, "--dtype", help="bf16 or fp8 (default bf16)")
TP_OPT = typer.Option(None, "--tp", help="tensor-parallel size (default 1)")
KV_DTYPE_OPT = typer.Option(None, "--kv-dtype", help="KV-cache dtype (default bf16)")
FRACTION_OPT = typer.Option(None, "--memory-fraction", help="share of GPU memory the engine manages")
EAGER_OPT = typer.Option(
    False, "--enforce-eager", help="no CUDA graphs (more per-step overhead, faster start)"
)
PROFILE_FILE_OPT = typer.Option(None, "--profile-file", help="YAML/JSON profile file with calibrated factors")
JSON_OPT = typer.Option(False, "--json", help="machine-readable output")

_BLOCKS = " ▏▎▍▌▋▊▉█"


def resolve_cli_profile(
    name: str | None,
    *,
    engine: str | None,
    model: str | None,
    gpu: str | None,
    dtype: str | None,
    tp: int | None,
    kv_dtype: str | None = None,
    memory_fraction: float | None = None,
    enforce_eager: bool = False,
    profile_file: Path | None = None,
) -> Profile:
    """The profile named on the command line (a name, or --engine/--model/--gpu/...) with a file's factors.

    With only --profile-file the file's own keys name the profile. A model that is not in the catalog may be a
    local model directory (what a CPU test host serves), read from its config.json."""
    keyed: Profile | None = None
    options: dict[str, Any] = {
        "kv_dtype": kv_dtype,
        "memory_fraction": memory_fraction,
        "cuda_graphs": not enforce_eager,
    }
    if name:
        if any(v is not None for v in (engine, model, gpu, dtype, tp)):
            raise LlmctlError("give either a profile name or --engine/--model/--gpu/--dtype/--tp, not both")
        keyed = resolve_named_profile(name, **options)
    elif model is not None or gpu is not None:
        if model is None or gpu is None:
            raise LlmctlError("--model and --gpu are both needed to name a profile")
        resolved = resolve_model(model, Path.cwd())
        keyed = make_profile(engine or "vllm", resolved, gpu, dtype or "bf16", tp or 1, **options)
    if profile_file is None:
        if keyed is None:
            raise LlmctlError(
                "name a profile (engine/model/gpu/dtype/tpN), or give --model and --gpu, or --profile-file"
            )
        return keyed
    loaded = load_profile_file(profile_file, base=keyed)
    if keyed is None:
        return replace(loaded, cuda_graphs=loaded.cuda_graphs and not enforce_eager)
    if loaded.name != keyed.name:
        err_console.print(
            f"[yellow]note:[/] factors from {profile_file} ({loaded.name}) applied to {keyed.name}"
        )
    fraction = memory_fraction if memory_fraction is not None else loaded.memory_fraction
    return replace(keyed, factors=loaded.factors, memory_fraction=fraction)


def _graphs(report: dict[str, Any]) -> str:
    # vLLM's CPU backend has no CUDA graphs; without --enforce-eager it runs the torch.compile'd model.
    if report.get("device") == "cpu":
        return "compiled" if report["cuda_graphs"] else "eager"
    return "CUDA graphs" if report["cuda_graphs"] else "eager"


def _bar(value: float, top: float, width: int) -> str:
    cells = 0.0 if top <= 0 else value / top * width
    full = int(cells)
    part = int((cells - full) * 8)
    return "█" * full + (_BLOCKS[part] if part and full < width else "")


def _render(report: dict[str, Any]) -> None:
    mem = report["memory"]
    console.print(
        f"[bold]{report['profile']}[/]  context {report['context']} tokens, "
        f"memory fraction {report['memory_fraction']:.2f}, "
        f"{_graphs(report)}",
        highlight=False,
    )
    console.print(
        f"weights {mem['weights_gib_per_rank']:.1f} GiB/rank, KV capacity "
        f"{mem['kv_capacity_tokens']:,} tokens (max batch {mem['max_batch_at_context']:,} at this context), "
        f"prefill of {report['context']} tokens {report['prefill_ms_at_context']:.1f} ms",
        highlight=False,
    )
    spec = "spec_tokens_per_s" in report["steps"][0]
    table = Table(title="decode step vs batch", title_justify="left")
    for column in ("batch", "step ms", "tokens/s", "bound", "fits KV"):
        table.add_column(column, justify="right")
    if spec:
        table.add_column("spec ms/token", justify="right")
        table.add_column("spec tokens/s", justify="right")
    for row in report["steps"]:
        cells = [
            str(row["batch"]),
            f"{row['step_ms']:.2f}",
            f"{row['tokens_per_s']:,.0f}",
            row["bound"],
            "yes" if row["fits"] else "[red]no[/]",
        ]
        if spec:
            cells += [f"{row['spec_token_ms']:.2f}", f"{row['spec_tokens_per_s']:,.0f}"]
        table.add_row(*cells)
    console.print(table)
    best = report["max_throughput"]
    if best is None:
        console.print("[red]not even one sequence of this context fits in the KV cache[/]")
    else:
        console.print(
            f"max throughput: [bold]{best['tokens_per_s']:,.0f} tokens/s[/] at batch {best['batch']:,} "
            f"(step {best['step_ms']:.1f} ms)",
            highlight=False,
        )
    console.print("\n[bold]tokens/s vs batch[/]")
    top = max(r["tokens_per_s"] for r in report["steps"])
    for row in report["steps"]:
        colour = "green" if row["fits"] else "red"
        console.print(
            f"{row['batch']:>5} [{colour}]{_bar(row['tokens_per_s'], top, 40):<40}[/] "
            f"{row['tokens_per_s']:>10,.0f}",
            highlight=False,
        )
    if "speculative" in report:
        s = report["speculative"]
        even = s["break_even_batch"]
        console.print(
            f"\nspeculative decoding (k={s['num_draft_tokens']}, acceptance {s['acceptance_rate']:.2f}): "
            + (
                f"stops paying at batch {even}"
                if even
                else f"pays up to batch {s['searched_up_to_batch']} (KV limit)"
            ),
            highlight=False,
        )
    console.print("\n[bold]cold start[/] (seconds)")
    phases = Table(show_header=True)
    phases.add_column("phase")
    phases.add_column("local disk", justify="right")
    phases.add_column("network", justify="right")
    local, network = report["cold_start"]["local"], report["cold_start"]["network"]
    for phase in local:
        phases.add_row(phase, f"{local[phase]:.1f}", f"{network[phase]:.1f}")
    console.print(phases)
    console.print(
        f"wake from sleep: {report['cold_start']['wake_from_sleep']['total_s']:.1f} s", highlight=False
    )


@app.command("show")
def show_command(
    profile: str | None = PROFILE_ARG,
    engine: str | None = ENGINE_OPT,
    model: str | None = MODEL_OPT,
    gpu: str | None = GPU_OPT,
    dtype: str | None = DTYPE_OPT,
    tp: int | None = TP_OPT,
    kv_dtype: str | None = KV_DTYPE_OPT,
    memory_fraction: float | None = FRACTION_OPT,
    enforce_eager: bool = EAGER_OPT,
    profile_file: Path | None = PROFILE_FILE_OPT,
    context: int = typer.Option(1024, "--context", min=1, help="tokens of context per sequence"),
    max_seqs: int | None = typer.Option(None, "--max-seqs", help="cap on running sequences (max_num_seqs)"),
    spec: bool | None = typer.Option(
        None,
        "--spec/--no-spec",
        help="compare EAGLE-3 speculative decoding (default: when the model has a draft, on a GPU)",
    ),
    acceptance: float | None = typer.Option(None, "--acceptance", help="per-token draft acceptance rate"),
    draft_tokens: int | None = typer.Option(None, "--draft-tokens", help="draft length k"),
    as_json: bool = JSON_OPT,
) -> None:
    """Step time vs batch, max throughput, KV capacity and cold start of a profile."""
    prof = resolve_cli_profile(
        profile,
        engine=engine,
        model=model,
        gpu=gpu,
        dtype=dtype,
        tp=tp,
        kv_dtype=kv_dtype,
        memory_fraction=memory_fraction,
        enforce_eager=enforce_eager,
        profile_file=profile_file,
    )
    spec_cfg: SpecConfig | None = None
    # llmctl plans no EAGLE-3 on vLLM's CPU backend; --spec still shows what it would do there.
    if spec or (spec is None and not prof.gpu.is_cpu):
        overrides = {
            k: v
            for k, v in (("acceptance_rate", acceptance), ("num_draft_tokens", draft_tokens))
            if v is not None
        }
        # The engine's own EAGLE-3 set-up (a chain in vLLM, a tree in SGLang), with the options on top.
        spec_cfg = engine_spec(prof.model, prof.engine)
        if spec_cfg is not None and overrides:
            spec_cfg = replace(
                spec_cfg,
                num_draft_tokens=int(overrides.get("num_draft_tokens", spec_cfg.num_draft_tokens)),
                acceptance_rate=float(overrides.get("acceptance_rate", spec_cfg.acceptance_rate)),
                # Explicit draft options replace the engine's published acceptance length.
                acceptance_length=None,
            )
        if spec and spec_cfg is None:
            raise LlmctlError(f"{prof.model.name} has no EAGLE-3 draft in the catalog")
    report = perf_report(prof, context=context, spec=spec_cfg, max_seqs=max_seqs)
    if as_json:
        print_json(report)
    else:
        _render(report)


@app.command("calibrate")
def calibrate_command(
    profile: str | None = PROFILE_ARG,
    engine: str | None = ENGINE_OPT,
    model: str | None = MODEL_OPT,
    gpu: str | None = GPU_OPT,
    dtype: str | None = DTYPE_OPT,
    tp: int | None = TP_OPT,
    kv_dtype: str | None = KV_DTYPE_OPT,
    memory_fraction: float | None = FRACTION_OPT,
    enforce_eager: bool = EAGER_OPT,
    profile_file: Path | None = PROFILE_FILE_OPT,
    csv_file: Path | None = typer.Option(
        None, "--csv", help="measured points: batch,context,prefill_tokens,step_time_s"
    ),
    url: str | None = typer.Option(
        None, "--url", help="benchmark a live OpenAI-compatible server at this URL"
    ),
    served_model: str | None = typer.Option(
        None,
        "--served-model-name",
        help="model name the server expects (default: --model or the profile's model)",
    ),
    concurrency: str = typer.Option(
        "1,2,4,8,16,32,64", "--concurrency", help="comma-separated concurrencies"
    ),
    prompt_tokens: int = typer.Option(512, "--prompt-tokens", min=1),
    output_tokens: int = typer.Option(128, "--output-tokens", min=2),
    fit: str | None = typer.Option(
        None,
        "--fit",
        help="comma-separated factor names to fit (default: memory, compute, overhead, and comm with TP > 1)",
    ),
    output: Path = typer.Option(
        Path("perf-profile.yaml"), "--output", "-o", help="profile file to write (.yaml/.json)"
    ),
    save_points: Path | None = typer.Option(
        None, "--save-points", help="also write the measured points as CSV"
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Fit the efficiency factors to measured step times and write a profile file."""
    if (csv_file is None) == (url is None):
        raise LlmctlError("give exactly one of --csv FILE or --url URL")
    prof = resolve_cli_profile(
        profile,
        engine=engine,
        model=model,
        gpu=gpu,
        dtype=dtype,
        tp=tp,
        kv_dtype=kv_dtype,
        memory_fraction=memory_fraction,
        enforce_eager=enforce_eager,
        profile_file=profile_file,
    )
    if csv_file is not None:
        try:
            text = csv_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise LlmctlError(f"{csv_file}: cannot read: {exc.strerror or exc}") from None
        points = parse_points_csv(text, str(csv_file))
        levels: list[BenchmarkLevel] = []
    else:
        from llmctl.bench.live import run_benchmark  # httpx only when benchmarking

        try:
            levels_wanted = [int(c) for c in concurrency.split(",") if c.strip()]
        except ValueError:
            raise LlmctlError(
                f"--concurrency: expected comma-separated integers, got {concurrency!r}"
            ) from None
        assert url is not None
        levels = run_benchmark(
            url,
            served_model or model or prof.model.name,
            concurrencies=levels_wanted,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
        )
        points = points_from_benchmark(levels)
    if save_points is not None:
        save_points.write_text(points_to_csv(points), encoding="utf-8")
    names = [n.strip() for n in fit.split(",") if n.strip()] if fit else None
    result = fit_factors(prof, points, names)
    write_profile_file(output, result.profile, result)
    if as_json:
        # The benchmark's own means per concurrency too: what a caller sizes further load from (throughput).
        measured = [dataclasses.asdict(level) for level in levels]
        print_json(
            {
                **profile_file_data(result.profile, result),
                "fitted": result.fitted,
                "output": str(output),
                "measured": measured,
            }
        )
        return
    console.print(f"[bold]{result.profile.name}[/]: fitted {result.points} points", highlight=False)
    table = Table()
    table.add_column("factor")
    table.add_column("before", justify="right")
    table.add_column("fitted", justify="right")
    for name, value in result.fitted.items():
        table.add_row(name, f"{getattr(prof.factors, name):.4g}", f"{value:.4g}")
    console.print(table)
    console.print(
        f"relative error of step time: mean {result.mean_rel_error:.1%}, max {result.max_rel_error:.1%}",
        highlight=False,
    )
    console.print(f"wrote {output}", highlight=False)
