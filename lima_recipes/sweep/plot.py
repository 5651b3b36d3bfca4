"""report.png: LIMA's ablation plots. The score against a numeric swept value (the quantity plot,
log2 axis when it spans a factor of 4 or more), one line per other variant; otherwise one bar per
variant (diversity, quality). Whiskers: the 95% interval over seeds."""

from __future__ import annotations

from pathlib import Path

from lima_recipes.sweep.report import LOWER_IS_BETTER, SweepReport, variant_label, x_axis_key


def _interval_errors(groups: list[dict]) -> list[list[float]]:
    return [[0 if g["ci95"][0] is None else g["mean"] - g["ci95"][0] for g in groups],
            [0 if g["ci95"][1] is None else g["ci95"][1] - g["mean"] for g in groups]]


def plot(report: SweepReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in report.groups if g["mean"] is not None]
    x_key = x_axis_key(report)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    if not groups:
        ax.text(0.5, 0.5, "no finished job has a score yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    elif x_key is not None:
        series: dict[str, list[dict]] = {}
        for g in groups:
            series.setdefault(variant_label({k: v for k, v in g["variant"].items() if k != x_key}), []).append(g)
        for label, members in series.items():
            members.sort(key=lambda g: float(g["variant"][x_key]))
            ax.errorbar([float(g["variant"][x_key]) for g in members], [g["mean"] for g in members],
                        yerr=_interval_errors(members), marker="o", capsize=4, label=label)
        xs = [float(g["variant"][x_key]) for g in groups]
        if min(xs) > 0 and max(xs) / min(xs) >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(x_key)
        if len(series) > 1:
            ax.legend(frameon=False, fontsize=8)
    else:
        ax.bar(range(len(groups)), [g["mean"] for g in groups], yerr=_interval_errors(groups), capsize=4, color="#1971c2")
        ax.set_xticks(range(len(groups)), [variant_label(g["variant"]) for g in groups], rotation=20, ha="right", fontsize=8)
    if groups:
        direction = "lower is better" if report.score in LOWER_IS_BETTER else "higher is better"
        ax.set_ylabel(f"{report.score} ({direction})")
        ax.set_title(f"{report.sweep_dir.name}: mean over seeds, 95% interval", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
