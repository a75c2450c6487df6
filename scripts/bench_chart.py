"""Draw a benchmark result as a PNG: ``python scripts/bench_chart.py RESULT.json OUT.png``.

Standalone (only matplotlib and the standard library), so that scripts/bench can run it
with whichever interpreter has matplotlib: Modelgate's venv, or the MLflow venv of
``--compare-mlflow`` (MLflow depends on matplotlib).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PHASES = ("create_version", "promote", "read", "list_100")
COLORS = {"Modelgate": "#2a7ab9", "MLflow": "#d0743c", "pgbench": "#6a6a6a", "boto3": "#6a6a6a"}


def _phase(phases: list[dict[str, Any]], name: str, c: int) -> dict[str, Any] | None:
    return next((p for p in phases if p["phase"] == name and p["concurrency"] == c), None)


def _bars(ax: Any, groups: list[str], series: dict[str, list[float | None]], log: bool) -> None:
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [v or 0 for v in values]
        bars = ax.bar(xs, heights, width, label=label, color=COLORS.get(label.split()[0]))
        for bar, v in zip(bars, values, strict=True):
            if v:
                ax.annotate(
                    f"{v:,.0f}" if v >= 10 else f"{v:.1f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7)


def draw(result: dict[str, Any], out: str) -> None:
    mg = result.get("modelgate", {}).get("phases", [])
    ml = result.get("mlflow", {}).get("phases", [])
    c = max(result.get("concurrency", [1]))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    fig.suptitle(
        f"Modelgate benchmark ({result.get('scale')} scale, {result.get('machine', {}).get('cpus')}"
        f" CPUs, PostgreSQL {result.get('machine', {}).get('postgresql')}), concurrency {c}",
        fontsize=11,
    )

    throughput: dict[str, list[float | None]] = {
        "Modelgate": [(_phase(mg, p, c) or {}).get("rps") for p in PHASES]
    }
    if ml:
        throughput["MLflow"] = [(_phase(ml, p, c) or {}).get("rps") for p in PHASES]
    pg = next((r for r in result.get("pgbench", {}).get("runs", []) if r["concurrency"] == c), None)
    if pg and pg.get("tps"):
        throughput["pgbench tx"] = [pg["tps"], None, None, None]
    _bars(axes[0][0], list(PHASES), throughput, log=True)
    axes[0][0].set_title("requests/s (log scale; higher is better)", fontsize=9)

    latency: dict[str, list[float | None]] = {
        "Modelgate": [(_phase(mg, p, c) or {}).get("p99_ms") for p in PHASES]
    }
    if ml:
        latency["MLflow"] = [(_phase(ml, p, c) or {}).get("p99_ms") for p in PHASES]
    if pg and pg.get("p99_ms"):
        latency["pgbench tx"] = [pg["p99_ms"], None, None, None]
    _bars(axes[0][1], list(PHASES), latency, log=True)
    axes[0][1].set_title("p99 latency ms (log scale; lower is better)", fontsize=9)

    upload = result.get("modelgate", {}).get("upload")
    refs = result.get("boto3", [])
    if upload:
        labels = ["Modelgate PUT"] + [r["phase"].replace("_upload", "") for r in refs]
        values = [upload.get("mib_per_s")] + [r.get("mib_per_s") for r in refs]
        ax = axes[1][0]
        colors = [COLORS["Modelgate"]] + [COLORS["boto3"]] * len(refs)
        bars = ax.bar(range(len(labels)), [v or 0 for v in values], color=colors)
        for bar, v in zip(bars, values, strict=True):
            ax.annotate(
                f"{v:.0f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=8)
        rise = upload.get("server_rss_rise_mib")
        ax.set_title(
            f"{upload['bytes'] // 2**20} MiB upload, MiB/s (server RSS rise {rise} MiB)",
            fontsize=9,
        )

    levels = result.get("scale_test", {}).get("levels", [])
    if len(levels) == 2:
        kinds = [p["phase"] for p in levels[0]["phases"] if p["concurrency"] == 1]
        series = {
            f"Modelgate {lvl['versions']:,} versions": [
                (_phase(lvl["phases"], k, 1) or {}).get("p99_ms") for k in kinds
            ]
            for lvl in levels
        }
        ax = axes[1][1]
        width = 0.4
        for i, (label, values) in enumerate(series.items()):
            xs = [g + (i - 0.5) * width for g in range(len(kinds))]
            ax.bar(xs, [v or 0 for v in values], width, label=label, alpha=0.6 + 0.4 * i,
                   color=COLORS["Modelgate"])  # fmt: skip
        ax.set_xticks(range(len(kinds)))
        ax.set_xticklabels(kinds, fontsize=7, rotation=15)
        ax.legend(fontsize=7)
        ax.set_title("list p99 ms at concurrency 1: small vs large model", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> int:
    if len(sys.argv) != 3:
        sys.stderr.write("usage: bench_chart.py RESULT.json OUT.png\n")
        return 2
    with open(sys.argv[1]) as handle:
        draw(json.load(handle), sys.argv[2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
