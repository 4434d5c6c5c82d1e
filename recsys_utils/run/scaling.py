"""The scaling report: cost exponents from ``bench_scale`` figures and the book's fragment.

``benchmarks/bench_scale.py`` measures every stage at several sizes of synthetic data
and writes ``outputs/reports/scale.json``; :func:`fit_exponents` turns the figures into
the exponent ``b`` of ``cost ~ ratings^b`` per stage (least squares in log-log), and
:func:`write_scaling_fragment` renders the JSON as the markdown that the "Scaling"
chapter (``book/scaling.md``) includes — or, when the benchmark has not been run, a note
saying so, so the book always builds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recsys_utils.atomic import atomic_write_text
from recsys_utils.paths import ProjectPaths, project_paths

__all__ = ["REPORT_NAME", "FRAGMENT_NAME", "FIGURE_NAME", "METRICS", "TARGETS", "extrapolate", "fit_exponent",
           "fit_exponents", "scaling_fragment", "write_scaling_fragment"]

#: In ``outputs/reports/``: the benchmark's figures and the rendered chapter fragment.
REPORT_NAME = "scale.json"
FRAGMENT_NAME = "scaling.md"
#: In ``outputs/figures/``: the log-log figure.
FIGURE_NAME = "scaling.png"


def fit_exponent(sizes: Sequence[float], costs: Sequence[float]) -> float | None:
    """Slope of ``log cost`` against ``log size`` (least squares); ``None`` with fewer than
    two usable points (a cost must be positive)."""
    pts = [(math.log(s), math.log(c)) for s, c in zip(sizes, costs, strict=True)
           if s and c and s > 0 and c > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


def fit_exponents(runs: Sequence[Mapping[str, Any]], metric: str = "seconds"
                  ) -> dict[str, float | None]:
    """``stage → exponent`` of ``metric`` (``seconds``, ``cpu_s``, ``peak_rss_mb``) over the runs."""
    stages = sorted({s for run in runs for s in run.get("stages", {})})
    out = {}
    for stage in stages:
        pairs = [(run["n_ratings"], run["stages"][stage].get(metric)) for run in runs
                 if stage in run.get("stages", {}) and run["stages"][stage].get("ok", True)]
        pairs = [(n, c) for n, c in pairs if c is not None]
        value = fit_exponent([n for n, _ in pairs], [c for _, c in pairs]) if pairs else None
        out[stage] = None if value is None else round(value, 3)
    return out


def extrapolate(cost: float, from_ratings: float, to_ratings: float,
                exponent: float | None) -> float | None:
    """``cost x (to/from)^exponent``: an extrapolation, not a measurement."""
    if exponent is None or cost is None or not from_ratings:
        return None
    return cost * (to_ratings / from_ratings) ** exponent


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


#: What each stage is measured by: wall time inside the stage's process, its CPU time
#: (user + system; on a shared machine the steadier of the two) and its peak RSS.
METRICS = (("seconds", "wall s"), ("cpu_s", "CPU s"), ("peak_rss_mb", "peak MB"))
#: Sizes the fragment extrapolates to (when larger than the largest measured run).
TARGETS = (3_000_000, 10_000_000)


def scaling_fragment(report: Mapping[str, Any] | None, figure: str | None = None) -> str:
    """The chapter's measured part as markdown (``figure``: the image path relative to the
    chapter, shown when given). Exponents and extrapolations are computed here from the
    runs, so the page always agrees with the figures in the JSON."""
    if not report or not report.get("runs"):
        return ("```{note}\nThe scaling benchmark has not been run on this machine, so there "
                "are no figures here yet. Run `make bench-scale` (quick: "
                "`make bench-scale SIZES=0.1M,1M`), then `make book`.\n```\n")
    runs = sorted(report["runs"], key=lambda r: r["n_ratings"])
    machine = report.get("machine", {})
    preset = report.get("preset") or "the defaults (notebooks/params.yaml)"
    lines = [
        f"Measured on **{machine.get('name', '?')}** ({machine.get('cpus', '?')} CPUs, "
        f"{_fmt(machine.get('memory_gb'))} GB RAM, {machine.get('platform', '?')}), "
        f"{report.get('date', '?')}, parameters: `{preset}`. Data: **synthetic** rating sets "
        f"from `recsys-generate` fitted to {report.get('source', 'the real data')} (not real "
        f"users). {report.get('contention_note', '')}",
        "",
    ]
    stages = list(report.get("stage_order") or sorted({s for r in runs for s in r["stages"]}))
    exps = {m: fit_exponents(runs, m) for m, _ in METRICS}
    head = ["stage"] + [f"{r['n_ratings'] / 1e6:g} M {label}" for m, label in METRICS
                        for r in runs] + [f"exp. {label.split()[0]}" for _, label in METRICS]
    lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for stage in stages:
        cells = []
        for m, _ in METRICS:
            for r in runs:
                got = r["stages"].get(stage, {})
                cells.append(_fmt(got.get(m)) if got.get("ok", True)
                             else "skipped" if got.get("skipped") else "failed")
        cells += [_fmt(exps[m].get(stage), 2) for m, _ in METRICS]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines += ["", "| ratings | users | titles | API start s | p50 ms | p99 ms | req/s | "
              "server CPU ms/request | server RSS MB |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        api = r.get("api") or {}
        lat = api.get("latency_ms") or {}
        lines.append(f"| {r['n_ratings']:,} | {r['n_users']:,} | {r['n_titles']:,} | "
                     f"{_fmt(api.get('startup_seconds'))} | {_fmt(lat.get('p50'))} | "
                     f"{_fmt(lat.get('p99'))} | {_fmt(api.get('throughput_rps'))} | "
                     f"{_fmt(api.get('server_cpu_ms_per_request'), 2)} | "
                     f"{_fmt(api.get('server_rss_mb'))} |")
    biggest = runs[-1]
    targets = [t for t in TARGETS if t > biggest["n_ratings"]]
    if targets and len(runs) >= 2:
        lines += ["", f"**Extrapolation, not a measurement**: the {biggest['n_ratings']:,}-rating "
                      "figure x (size ratio)^(fitted exponent), per stage. Not measured here; "
                      "the exponents come from only "
                      f"{len(runs)} sizes.", ""]
        head = ["stage"] + [f"{t / 1e6:g} M {label} (extrapolated)" for t in targets
                            for _, label in METRICS]
        lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for stage in stages:
            got = biggest["stages"].get(stage, {})
            if not got.get("ok", True):
                continue
            cells = [_fmt(extrapolate(got.get(m), biggest["n_ratings"], t, exps[m].get(stage)))
                     for t in targets for m, _ in METRICS]
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    if figure:
        lines += ["", f"```{{figure}} {figure}", ":name: fig-scaling", "",
                  "Wall time and peak memory of each stage against the number of ratings "
                  "(log-log; synthetic data).", "```"]
    return "\n".join(lines) + "\n"


def write_scaling_fragment(paths: ProjectPaths | None = None) -> Path:
    """Render ``outputs/reports/scale.json`` (or the not-run note) into
    ``outputs/reports/scaling.md``, the fragment ``book/scaling.md`` includes."""
    paths = paths or project_paths()
    report_file = paths.reports / REPORT_NAME
    report = None
    if report_file.is_file():
        try:
            report = json.loads(report_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            report = None
    figure_file = paths.figures / FIGURE_NAME
    # the chapter lives in book/: the figure path is relative to it
    figure = f"../{figure_file.relative_to(paths.root).as_posix()}" \
        if report and figure_file.is_file() else None
    return atomic_write_text(paths.reports / FRAGMENT_NAME, scaling_fragment(report, figure))
