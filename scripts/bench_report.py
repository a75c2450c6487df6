"""Tables and ratios from a benchmark result (the dict that is also written as JSON)."""

from __future__ import annotations

from typing import Any

from bench_workload import MIB

REQUEST_PHASES = ("create_version", "promote", "read", "list_100")


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    lines = [
        "  ".join(
            h.rjust(w) if i else h.ljust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        ),
        "  ".join("-" * w for w in widths),
    ]
    for row in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def phase_rows(phases: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for p in phases:
        cpu = p.get("cpu", {})
        rss = p.get("rss", {}).get("server", {})
        rows.append(
            [
                p["phase"],
                p["concurrency"],
                p["requests"],
                p.get("rps"),
                p.get("p50_ms"),
                p.get("p95_ms"),
                p.get("p99_ms"),
                p["errors"],
                cpu.get("server_cpu_s"),
                p.get("server_cpu_ms_per_request"),
                round(rss["max_total_rss"] / MIB, 1) if rss else None,
                cpu.get("db_cpu_s"),
                cpu.get("client_cpu_s"),
                cpu.get("other_cpu_s"),
            ]
        )
    return rows


PHASE_HEADERS = [
    "phase", "c", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
    "server CPU s", "CPU ms/req", "server RSS MiB", "db CPU s", "client CPU s", "other CPU s",
]  # fmt: skip


def _phase(phases: list[dict[str, Any]], name: str, concurrency: int) -> dict[str, Any] | None:
    for p in phases:
        if p["phase"] == name and p["concurrency"] == concurrency:
            return p
    return None


def _ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, digits)


def checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of issue 7 that this run can decide, as a ratio."""
    out: list[dict[str, Any]] = []
    mg = result.get("modelgate", {}).get("phases", [])
    ml = result.get("mlflow", {}).get("phases", [])
    levels = result.get("concurrency", [])

    def add(name: str, c: int | None, value: float | None, target: str, ok: bool | None) -> None:
        shown = None if value is None else f"{value:.2f}"
        out.append(
            {"check": name, "concurrency": c, "value": value, "shown": shown, "target": target,
             "ok": ok}
        )  # fmt: skip

    for c in levels:
        for phase in ("create_version", "promote", "read", "list_100"):
            a, b = _phase(mg, phase, c), _phase(ml, phase, c)
            if a is None or b is None:
                continue
            gated = phase != "list_100" and c == max(levels)
            thr = _ratio(a.get("rps"), b.get("rps"))
            p99 = _ratio(b.get("p99_ms"), a.get("p99_ms"))
            add(f"{phase}: throughput Modelgate/MLflow", c, thr, ">= 10" if gated else "-",
                (thr is not None and thr >= 10) if gated else None)  # fmt: skip
            add(f"{phase}: p99 MLflow/Modelgate", c, p99, ">= 10" if gated else "-",
                (p99 is not None and p99 >= 10) if gated else None)  # fmt: skip
    for run in result.get("pgbench", {}).get("runs", []):
        c = run.get("concurrency")
        a = _phase(mg, "create_version", c) if c is not None else None
        if a is None or "tps" not in run:
            continue
        value = _ratio(a.get("rps"), run.get("tps"))
        gated = c == max(levels)
        add("create_version: Modelgate/pgbench tx rate", c, value, ">= 0.5" if gated else "-",
            (value is not None and value >= 0.5) if gated else None)  # fmt: skip
    upload = result.get("modelgate", {}).get("upload")
    refs = {r["phase"]: r for r in result.get("boto3", [])}
    if upload and refs:
        for label in ("boto3_upload", "boto3_upload_serial"):
            ref = refs.get(label)
            if ref is None:
                continue
            value = _ratio(upload.get("mib_per_s"), ref.get("mib_per_s"))
            primary = label == "boto3_upload"
            add(f"upload: Modelgate/{label} MiB/s", 1, value, ">= 0.9" if primary else "-",
                (value is not None and value >= 0.9) if primary else None)  # fmt: skip
    if upload and "server_rss_rise_mib" in upload:
        rise = upload["server_rss_rise_mib"]
        add("upload: server RSS rise MiB", 1, rise, "< 64", rise < 64)
    serving = result.get("serving", {})
    cpu = serving.get("cpu_per_request", {})
    ratio = serving.get("ratios", {}).get("mlflow_alias_cpu_over_plan_304")
    if ratio is not None:
        add("serving: CPU/req MLflow alias read / Modelgate 304", 1, ratio, ">= 10", ratio >= 10)
    alias_ratio = serving.get("ratios", {}).get("mlflow_alias_cpu_over_version_by_alias")
    if alias_ratio is not None:
        add("serving: CPU/req MLflow alias read / Modelgate @alias read", 1, alias_ratio, "-",
            None)  # fmt: skip
    if "plan_304" in cpu and "plan_200" in cpu:
        value = _ratio(cpu["plan_200"]["server_cpu_ms_per_request"],
                       cpu["plan_304"]["server_cpu_ms_per_request"])  # fmt: skip
        add("serving: CPU/req plan 200 / plan 304", 1, value, "-", None)
    watch = serving.get("watch")
    if watch:
        n = watch["watchers"]
        p99 = watch["wake_ms"]["p99"]
        add(f"serving: wake-up p99 ms, {n} watchers", n, p99, "< 1000",
            p99 is not None and p99 < 1000 and watch["woken_all_rounds"])  # fmt: skip
        idle = watch["idle_server_cpu_percent_of_a_core"]
        add(f"serving: idle server CPU % of a core, {n} watchers", n, idle, "< 2", idle < 2)
    rollout = result.get("rollout")
    if rollout:
        n = rollout["routers"]
        p99 = rollout["abort_latency_ms"]["p99"]
        add(f"rollout: abort latency p99 ms, {n} routers", n, p99, "-", None)
    scale = result.get("scale_test", {}).get("levels", [])
    if len(scale) == 2:
        small, large = scale
        for p in large["phases"]:
            q = next(
                (
                    x
                    for x in small["phases"]
                    if x["phase"] == p["phase"] and x["concurrency"] == p["concurrency"]
                ),
                None,
            )
            if q is None:
                continue
            value = _ratio(p.get("p99_ms"), q.get("p99_ms"))
            add(f"{p['phase']}: p99 at {large['versions']:,} / at {small['versions']:,}",
                p["concurrency"], value, "<= 1.5", value is not None and value <= 1.5)  # fmt: skip
    return out


def render(result: dict[str, Any]) -> str:
    parts = [f"Modelgate benchmark, run {result['run_id']} ({result['scale']} scale)"]
    machine = result.get("machine", {})
    parts.append(
        f"machine: {machine.get('cpus')} CPUs, {machine.get('memory_gib')} GiB, "
        f"PostgreSQL {machine.get('postgresql')}, load before start {machine.get('loadavg')}"
    )
    mg = result.get("modelgate", {})
    for label, section in (("Modelgate", mg), ("MLflow", result.get("mlflow", {}))):
        for path, times in section.get("keepalive_ms", {}).items():
            parts.append(f"{label} kept-alive connection, GET {path}: {times} ms")
    if mg.get("phases"):
        parts += [
            "",
            f"Modelgate ({mg.get('workers')} workers)",
            table(PHASE_HEADERS, phase_rows(mg["phases"])),
        ]
    upload = mg.get("upload")
    if upload:
        parts += [
            "",
            "Artifact upload (one request, sha256 declared)",
            table(
                [
                    "target",
                    "MiB",
                    "s",
                    "MiB/s",
                    "errors",
                    "RSS before",
                    "RSS peak",
                    "rise",
                    "samples",
                ],
                [
                    [
                        "modelgate",
                        upload["bytes"] // MIB,
                        upload["seconds"],
                        upload["mib_per_s"],
                        upload["errors"],
                        upload.get("server_rss_baseline_mib"),
                        upload.get("server_rss_peak_mib"),
                        upload.get("server_rss_rise_mib"),
                        upload.get("rss_samples"),
                    ],
                    *[
                        [r["phase"], r["bytes"] // MIB, r["seconds"], r["mib_per_s"], r["errors"]]
                        + [None] * 4
                        for r in result.get("boto3", [])
                    ],
                ],
            ),
        ]
    pg = result.get("pgbench", {})
    if pg.get("runs"):
        parts += [
            "",
            "pgbench: one version-creation transaction (counter, version row, audit row)",
            table(
                ["c", "tx/s", "p50 ms", "p95 ms", "p99 ms", "failed"],
                [
                    [
                        r["concurrency"],
                        r.get("tps"),
                        r.get("p50_ms"),
                        r.get("p95_ms"),
                        r.get("p99_ms"),
                        r.get("failed"),
                    ]
                    for r in pg["runs"]
                ],
            ),
        ]
    elif pg.get("skipped"):
        parts += ["", f"pgbench: skipped ({pg['skipped']})"]
    ml = result.get("mlflow", {})
    if ml.get("phases"):
        parts += ["", f"MLflow {ml.get('version')} (mlflow server --workers {ml.get('workers')})"]
        parts.append(table(PHASE_HEADERS, phase_rows(ml["phases"])))
    elif ml.get("skipped"):
        parts += ["", f"MLflow: skipped ({ml['skipped']})"]
    serving = result.get("serving", {})
    if serving.get("cpu_per_request"):
        parts += [
            "",
            "Serving: server CPU per request (sequential, one kept-alive connection)",
            table(
                ["request", "requests", "req/s", "errors", "server CPU ms/req", "db CPU ms/req"],
                [
                    [
                        name,
                        r["requests"],
                        r["rps"],
                        r["errors"],
                        r["server_cpu_ms_per_request"],
                        r["db_cpu_ms_per_request"],
                    ]
                    for name, r in serving["cpu_per_request"].items()
                ],
            ),
        ]
    watch = serving.get("watch")
    if watch:
        parts += [
            "",
            f"Serving: {watch['watchers']} long-poll watchers (wait {watch['wait_s']:.0f} s); "
            f"idle {watch['idle_seconds']} s: server {watch['idle_server_cpu_percent_of_a_core']}"
            f" % of a core, db {watch['idle_db_cpu_percent_of_a_core']} %; "
            f"watcher errors {watch['watcher_errors']}",
            table(
                ["change", "revision", "woken", "p50 ms", "p99 ms", "max ms", "min ms"],
                [
                    [
                        r["change"],
                        r["revision"],
                        r["woken"],
                        r["wake_ms"]["p50"],
                        r["wake_ms"]["p99"],
                        r["wake_ms"]["max"],
                        r["wake_ms"]["min"],
                    ]
                    for r in watch["rounds"]
                ],
            ),
        ]
    rollout = result.get("rollout")
    if rollout:
        latency = rollout["abort_latency_ms"]
        parts += [
            "",
            f"Rollout: a canary erring {rollout['error_rates']['canary']:.0%} vs "
            f"{rollout['error_rates']['incumbent']:.0%}, batches of "
            f"{rollout['batch_observations']}; aborted after batch "
            f"{rollout['decisive_batch']} ({rollout['aborted']}); "
            f"{rollout['routers_with_incumbent_alone']}/{rollout['routers']} long-poll routers "
            f"on the incumbent alone; router errors {rollout['router_errors']}",
            table(
                ["abort p50 ms", "p99 ms", "max ms", "server CPU ms/batch", "ms/1000 obs"],
                [[latency["p50"], latency["p99"], latency["max"],
                  rollout["server_cpu_ms_per_batch"],
                  rollout["server_cpu_ms_per_1000_observations"]]],
            ),
        ]  # fmt: skip
    scale = result.get("scale_test", {})
    for level in scale.get("levels", []):
        seed = level["seed"]
        parts += [
            "",
            f"List and search with {level['versions']:,} versions in one model "
            f"(seeded {seed['seeded']:,} in {seed['seconds']} s)",
            table(PHASE_HEADERS[:8], [r[:8] for r in phase_rows(level["phases"])]),
        ]
    if scale.get("skipped"):
        parts += ["", f"scale test: skipped ({scale['skipped']})"]
    found = checks(result)
    if found:
        parts += [
            "",
            "Ratios and targets",
            table(
                ["check", "c", "value", "target", "met"],
                [
                    [
                        c["check"],
                        c["concurrency"],
                        c["shown"],
                        c["target"],
                        "-" if c["ok"] is None else ("yes" if c["ok"] else "NO"),
                    ]
                    for c in found
                ],
            ),
        ]
    errors = [
        (p["phase"], p["concurrency"], s)
        for section in ("modelgate", "mlflow")
        for p in result.get(section, {}).get("phases", [])
        for s in p.get("error_samples", [])
    ]
    if errors:
        parts += ["", "First errors:"] + [f"  {ph} c={c}: {s}" for ph, c, s in errors[:10]]
    return "\n".join(parts)


def _md(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    """The tables of docs/performance.md, from a result JSON."""
    out = []
    short = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]
    for label, key in (("Modelgate", "modelgate"), ("MLflow", "mlflow")):
        phases = result.get(key, {}).get("phases", [])
        if phases:
            rows = [[r[i] for i in short] for r in phase_rows(phases)]
            out += [f"**{label}**", "", _md([PHASE_HEADERS[i] for i in short], rows), ""]
    upload = result.get("modelgate", {}).get("upload")
    if upload:
        rows = [["Modelgate PUT", upload["mib_per_s"], upload["seconds"], upload["errors"],
                 upload.get("server_rss_baseline_mib"), upload.get("server_rss_peak_mib"),
                 upload.get("server_rss_rise_mib"), upload.get("rss_samples")]]  # fmt: skip
        rows += [[r["phase"], r["mib_per_s"], r["seconds"], r["errors"], None, None, None, None]
                 for r in result.get("boto3", [])]  # fmt: skip
        out += ["**Upload**", "", _md(["target", "MiB/s", "s", "errors", "server RSS before MiB",
                "peak MiB", "rise MiB", "RSS samples"], rows), ""]  # fmt: skip
    runs = result.get("pgbench", {}).get("runs", [])
    if runs:
        rows = [[r["concurrency"], r.get("tps"), r.get("p50_ms"), r.get("p99_ms"), r.get("failed")]
                for r in runs]  # fmt: skip
        out += ["**pgbench**", "", _md(["c", "tx/s", "p50 ms", "p99 ms", "failed"], rows), ""]
    levels = result.get("scale_test", {}).get("levels", [])
    if len(levels) == 2:
        small, large = levels
        rows = []
        for p in large["phases"]:
            q = next((x for x in small["phases"] if x["phase"] == p["phase"]
                      and x["concurrency"] == p["concurrency"]), None)  # fmt: skip
            if q is None:
                continue
            rows.append([p["phase"], p["concurrency"], q["p50_ms"], q["p99_ms"], p["p50_ms"],
                         p["p99_ms"], _ratio(p["p99_ms"], q["p99_ms"])])  # fmt: skip
        out += ["**List and search, small vs large model**", "", _md(
            ["query", "c", f"p50 ms at {small['versions']:,}", f"p99 ms at {small['versions']:,}",
             f"p50 ms at {large['versions']:,}", f"p99 ms at {large['versions']:,}", "p99 ratio"],
            rows), ""]  # fmt: skip
    found = checks(result)
    if found:
        met = {None: "-", True: "yes", False: "**no**"}
        rows = [
            [c["check"], c["concurrency"], c["shown"], c["target"], met[c["ok"]]] for c in found
        ]
        out += ["**Ratios and targets**", "", _md(["check", "c", "value", "target", "met"], rows)]
    return "\n".join(out)


if __name__ == "__main__":
    import json
    import sys

    with open(sys.argv[1]) as handle:
        sys.stdout.write(markdown(json.load(handle)) + "\n")
