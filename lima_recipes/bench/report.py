"""`make bench`'s results as rows: the console table, docs/benchmarks.md and its chart. Every
figure is a median with its min-max; every comparison a ratio to a baseline measured in the same
run; a missed target is shown as missed."""

from __future__ import annotations

from pathlib import Path


def _fig(spread: dict, fmt: str = "{:.3g}") -> str:
    return f"{fmt.format(spread['median'])} ({fmt.format(spread['min'])}-{fmt.format(spread['max'])})"


def _target(target: dict | None) -> str:
    if not target:
        return ""
    return ("met" if target["met"] else "**missed**") + f" ({target['name']}: {target['value']:.3g})"


def rows(report: dict) -> list[tuple[str, str, str, str, str]]:
    """(section, variant, figure, ratio, target) rows."""
    out = []
    step = report.get("step_overhead")
    if step:
        for name, r in step["variants"].items():
            out.append(("1 step overhead", name, f"{_fig(r['cpu_seconds_per_step'])} CPU s/step; wall {_fig(r['seconds_per_step'])} s",
                        f"{_fig(r['ratio_to_plain'], '{:.2f}')}x plain (wall {r['wall_ratio_to_plain']['median']:.2f}x)",
                        _target(step["target"]) if name == "ours (make train)" else ""))
    mix = report.get("lima_mix")
    if mix:
        ours = next(iter(mix["variants"]))
        shape = mix["mix"]
        for name, r in mix["variants"].items():
            out.append(("2 LIMA-mix tokens/s", name,
                        f"{_fig(r['trained_tokens_per_s'], '{:.0f}')} tok/s, {_fig(r['seconds_per_epoch'])} s/epoch of "
                        f"{shape['examples']}; pad {r['pad_fraction']:.1%} (whole mix {r['full_mix_pad_fraction']:.1%})",
                        f"{r['ratio_to_hf_default']:.2f}x HF default",
                        "; ".join(_target(t) for t in mix["targets"]) if name == ours else ""))
        out.append(("2 LIMA-mix tokens/s", "HF Trainer (batch_rebalance), not timed",
                    f"pad over the whole mix {shape['hf_batch_rebalance_full_mix_pad_fraction']:.1%}", "", ""))
    data = report.get("data_prep")
    if data:
        out.append(("3 data preparation", f"{data['examples']} examples cold", f"{_fig(data['cold_seconds'])} s, "
                    f"{_fig(data['cold_examples_per_s'], '{:.0f}')} ex/s", "", ""))
        out.append(("3 data preparation", "from the cache", f"{_fig(data['cached_seconds'])} s",
                    f"{data['cached_speedup']['median']:.0f}x faster", _target(data["target"])))
    start = report.get("startup")
    if start:
        for name, r in start["phases"].items():
            out.append(("4 start-up", name, f"{_fig(r)} s", "", ""))
        out.append(("4 start-up", "beyond imports", f"{_fig(start['beyond_imports'])} s", "", _target(start["target"])))
    memory = report.get("memory")
    if memory:
        for name, mb in memory["measured_peak_rss_mb"].items():
            out.append(("5 memory", name, f"{mb:.0f} MB peak RSS", "", ""))
        plan = memory["plan"]
        out.append(("5 memory", "`make plan` estimate (model states + activations)", f"{plan['total_mb']:.0f} MB",
                    f"{memory['plan_share_of_measured']:.0%} of ours measured", memory["note"]))
    gen = report.get("generation")
    if gen:
        out.append(("6 generation", f"batched ({gen['batch_size']})", f"{_fig(gen['batched_responses_per_s'])} responses/s",
                    f"{gen['speedup']:.2f}x one by one", "same outputs" if gen["same_outputs"] else "**outputs differ**"))
        out.append(("6 generation", "one by one", f"{_fig(gen['one_by_one_responses_per_s'])} responses/s", "", ""))
    cur = report.get("curation")
    if cur:
        for label in ("1x", next(k for k in cur if k.endswith("x") and k != "1x")):
            r = cur[label]
            out.append(("7 curation", f"Stack Exchange XML {label} ({r['input_mb']:.1f} MB)",
                        f"{_fig(r['mb_per_s'])} MB/s, {r['peak_rss_mb']['median']:.0f} MB peak", "", ""))
        out.append(("7 curation", "peak memory at the larger input", f"{cur['peak_memory_ratio']:.2f}x the smaller", "", "flat is 1.0"))
    gpu = report.get("gpu")
    if gpu and "variants" in gpu:
        targets = "; ".join(_target(t) for t in gpu["targets"])
        for k, (name, r) in enumerate(gpu["variants"].items()):
            if "error" in r:
                figure, ratio = f"failed: {r['error']}", f"plan {r['plan_mb']:.0f} MB"
            else:
                mfu = f", MFU {r['mfu']:.1%}" if r["mfu"] is not None else ", MFU unknown (device's peak FLOP/s not in the table)"
                figure = f"{_fig(r['tokens_per_s'], '{:.0f}')} tok/s{mfu}"
                ratio = f"peak {r['measured_peak_mb']:.0f} MB, plan {r['plan_mb']:.0f} MB ({r['plan_error']:+.0%})"
            out.append(("8 GPU", f"{gpu['model']} on {gpu['device']}: {name}", figure, ratio, targets if k == 0 else ""))
    else:
        out.append(("8 GPU", "bf16 MFU, FSDP / ZeRO-3", gpu.get("note", "") if gpu else "not run", "", ""))
    sharded = report.get("sharded")
    if sharded:
        steps = sharded["steps"]
        for name, r in steps["seconds_per_step"].items():
            out.append(("9 sharded (2 CPU processes)", f"{name}, seconds per optimizer step", f"{_fig(r)} s",
                        f"{_fig(steps['ratio_fsdp2_to_ddp'], '{:.2f}')}x DDP, step by step" if name == "FSDP2" else "",
                        _target(steps["target"]) if name == "FSDP2" else ""))
        labels = {"broadcast": "FSDP2, rank 0 reads and broadcasts", "per_rank": "FSDP2, each rank reads its slices",
                  "every_rank": "whole model on every rank (DDP)"}
        for loader, r in sharded["loaders"].items():
            figure = ", ".join(f"rank {k} +{rank['own_memory_growth_mb']:.0f} MB own (+{rank['rss_growth_mb']:.0f} MB RSS)"
                               for k, rank in enumerate(r["ranks"]))
            out.append(("9 sharded: loading", labels[loader], figure,
                        f"rank 1: {r['ranks'][1]['own_memory_growth_mb'] / r['model_mb']:.2f}x the {r['model_mb']:.0f} MB model", ""))
    width = report.get("real_width")
    if width:
        shape = width["shape"]
        section = f"10 real width ({shape['preset']}, {shape['batch']}x{shape['tokens']} tokens, {shape['threads']} threads)"
        for name, r in width["variants"].items():
            extra = ""
            if "loss_rel_diff" in r:
                extra = (f"; first step {r['first_step_seconds']:.0f} s; loss within {r['loss_rel_diff']:.1e} (relative) "
                         "of ours in fp32 eager, step by step")
            out.append((section, name, f"{_fig(r['seconds_per_step'])} s/step; {r['gflops']:.0f} GFLOP/s = "
                        f"{r['share_of_matmul_peak']:.0%} of the matmul peak ({r['dense_share_of_matmul_peak']:.0%} without attention){extra}",
                        f"{_fig(r['ratio_to_plain'], '{:.2f}')}x plain (CPU s; wall {r['wall_ratio_to_plain']['median']:.2f}x)",
                        _target(width["target"]) if name == "ours (make train)" else ""))
        if width.get("bf16_note"):
            out.append((section, "ours, bf16 autocast", width["bf16_note"], "", ""))
        kinds = ", ".join(f"{kind} {share:.0%}" for kind, share in width["profile"]["share_by_kind"].items())
        out.append((section, "where a plain step's CPU time goes", kinds,
                    f"fp32 torch.mm peak {width['matmul_peak_gflops']:.0f} GFLOP/s (this run)", ""))
    mix_width = report.get("real_width_mix")
    if mix_width:
        shape = mix_width["shape"]
        section = (f"10 real width: LIMA mix ({shape['preset']} width, {shape['layers']} layers, {shape['examples']} examples "
                   f"in one step, micro-batch {shape['micro_batch']})")
        for k, (name, r) in enumerate(mix_width["variants"].items()):
            out.append((section, name, f"{r['trained_tokens_per_s']['median']:.0f} tok/s; pad {r['pad_fraction']:.1%}",
                        f"{r['ratio_to_hf_default']:.2f}x HF default", "; ".join(_target(t) for t in mix_width["targets"]) if k == 0 else ""))
    return out


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="make bench: medians (min-max) of repeats after a warm-up; ratios within this run")
    for column in ("section", "variant", "figure", "ratio", "target"):
        table.add_column(column)
    for row in rows(report):
        table.add_row(*(cell.replace("**", "") for cell in row))
    Console(width=200).print(table)


def write_docs(report: dict, command: str, folder: Path) -> list[Path]:
    env = report["environment"]
    lines = ["# Benchmarks", "",
             f"Measured by `{command}` on {env['cores']} CPU cores ({env['machine']}), Python {env['python']}, torch {env['torch']}, "
             f"transformers {env['transformers']}, lightning {env['lightning']}, trl {env.get('trl', '-')}, commit `{env['git_commit'][:10]}`, "
             f"{env['date']}. Each figure is the median of repeats after a warm-up, with min-max (section 10 says its step counts); each ratio is "
             "against a baseline measured in the same run. Regenerate with `make bench`.", "",
             "| section | variant | figure | ratio | target |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(report)]
    lines += ["", "![trained tokens per second](benchmarks.png)", ""]
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "benchmarks.md", folder / "benchmarks.png"]
    paths[0].write_text("\n".join(lines))
    chart(report, paths[1])
    return paths


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = report["lima_mix"]["variants"]
    names = list(variants)
    medians = [variants[n]["trained_tokens_per_s"]["median"] for n in names]
    err = [[m - variants[n]["trained_tokens_per_s"]["min"] for n, m in zip(names, medians)],
           [variants[n]["trained_tokens_per_s"]["max"] - m for n, m in zip(names, medians)]]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh(range(len(names)), medians, xerr=err, capsize=3, color=["#2b8a3e"] + ["#adb5bd"] * (len(names) - 1))
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("trained (unmasked) tokens per second, tiny Llama, LIMA-like length mix")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
