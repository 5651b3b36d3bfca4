"""Evaluation outputs: results JSON, per-item judgements JSONL, a Markdown report with a bar chart
(PNG), and the same table on the console. The JSON is written last: its presence means the rest
is complete."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lima_recipes.eval.evaluate import file_label
from lima_recipes.io import write_atomically, write_jsonl

COLOURS = {"win": "#2b8a3e", "tie": "#adb5bd", "loss": "#c92a2a",
           "Fail": "#c92a2a", "Pass": "#f59f00", "Excellent": "#2b8a3e"}


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _interval(ci, fmt="{:.1f}") -> str:
    return "-" if ci[0] is None else f"[{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def table_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the headline table, shared by the console, Markdown and W&B."""
    results = summary["results"]
    if summary["eval"] == "likert":
        h = results["helpfulness"]
        mean = "-" if h["mean"] is None else f"{h['mean']:.2f}"
        return ["score", "mean", "95% CI", "prompts"], [["helpfulness (1-6)", mean, _interval(h["ci95"], "{:.2f}"), str(h["n"])]]
    return (["verdict", "share", "count", "95% CI"],
            [[name, _pct(r["percent"]), str(r["count"]), _interval(r["ci95"])] for name, r in results.items()])


def markdown(summary: dict, chart_name: str | None) -> str:
    header, rows = table_rows(summary)
    judge = summary["judge"]
    lines = [f"# {summary['eval']} evaluation", "",
             f"- ours: `{summary['ours']}`"]
    if summary.get("baseline"):
        lines.append(f"- baseline: `{summary['baseline']}`")
    lines += [f"- judge: {judge['kind']} `{judge['model']}`" + (f" at {judge['base_url']}" if judge.get("base_url") else ""),
              f"- judge prompt: `{summary['prompt_version']}`",
              f"- judged items: {summary.get('prompts', summary.get('responses'))}; invalid verdicts "
              f"(unparseable after retries, left out of the shares): {summary['invalid']}",
              f"- judge requests: {summary['requests']['new']} new, {summary['requests']['cached']} from the cache", ""]
    if summary.get("left_out"):
        lines += [f"- ids present in only one file and left out (eval.intersect=true): {', '.join(summary['left_out'])}", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if summary["eval"] == "pairwise":
        lines += ["", "Each prompt is judged twice with the answers swapped; a verdict that changes with the order "
                      "counts as a tie. Intervals: percentile bootstrap over prompts."]
    if chart_name:
        lines += ["", f"![{summary['eval']}]({chart_name})"]
    return "\n".join(lines) + "\n"


def bar_chart(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.2 if summary["eval"] != "likert" else 3))
    results = summary["results"]
    if summary["eval"] == "likert":
        counts = results["distribution"]
        ax.bar(list(counts), list(counts.values()), color="#1971c2")
        h = results["helpfulness"]
        title = "helpfulness" + ("" if h["mean"] is None else f": mean {h['mean']:.2f} [{h['ci95'][0]:.2f}, {h['ci95'][1]:.2f}]")
        ax.set(xlabel="score", ylabel="responses", title=title)
    else:
        # LIMA's Figure 1 layout: one stacked bar of win / tie / loss shares.
        left = 0.0
        for name, r in results.items():
            share = r["percent"] or 0.0
            ax.barh([0], [share], left=left, color=COLOURS.get(name), label=f"{name} {share:.0f}%")
            left += share
        ax.set(xlim=(0, 100), yticks=[], xlabel="% of judged items", title=f"{summary['eval']} ({summary['judge']['model']})")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def write_results(summary: dict, records: list[dict], output: str | Path) -> Path:
    output = Path(output)
    write_jsonl(output.with_suffix(".judgements.jsonl"), records)
    chart = output.with_suffix(".png")
    bar_chart(summary, chart)
    write_atomically(output.with_suffix(".md"), markdown(summary, chart.name))
    write_atomically(output, json.dumps(summary, indent=2, ensure_ascii=False))
    return output


def print_table(summary: dict, console: Console | None = None) -> None:
    header, rows = table_rows(summary)
    table = Table(title=f"{summary['eval']}: {summary['judge']['model']} judging {file_label(summary['ours'])}"
                  + (f" vs {file_label(summary['baseline'])}" if summary.get("baseline") else ""))
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    (console or Console()).print(table)
    if summary["invalid"]:
        print(f"{summary['invalid']} invalid verdict(s) (unparseable after retries) are left out of the shares")
