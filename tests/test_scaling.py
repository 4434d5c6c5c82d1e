"""The scaling report: exponents from measured figures, and the book fragment built from them."""

from __future__ import annotations

import json

import pytest

from recsys_utils.paths import project_paths
from recsys_utils.run import scaling


def _report(seconds: dict[int, float]) -> dict:
    runs = [{"n_ratings": n, "n_users": n // 100, "n_titles": 9000,
             "stages": {"clean": {"seconds": s, "cpu_s": s / 2, "peak_rss_mb": 200.0 + n / 1e4,
                                  "ok": True},
                        "served_fit": {"ok": False, "error": "exit 1"}},
             "api": {"startup_seconds": 2.0, "latency_ms": {"p50": 7.5, "p99": 31.0},
                     "throughput_rps": 150.0, "server_rss_mb": 300.0}}
            for n, s in seconds.items()]
    return {"runs": runs, "machine": {"name": "box-7", "cpus": 2, "memory_gb": 23.4,
                                      "platform": "Linux"},
            "source": "embedded MovieLens", "date": "2026-12-04",
            "stage_order": ["clean", "served_fit"],
            "exponents": {"seconds": scaling.fit_exponents(runs),
                          "peak_rss_mb": scaling.fit_exponents(runs, "peak_rss_mb")}}


def test_exponent_of_a_power_law_is_recovered():
    sizes = [1e5, 1e6, 1e7]
    assert scaling.fit_exponent(sizes, [3 * s ** 1.5 for s in sizes]) == pytest.approx(1.5)
    assert scaling.fit_exponent([1e5], [2.0]) is None  # one size: no slope
    assert scaling.extrapolate(10.0, 1e6, 1e7, 1.2) == pytest.approx(10 * 10 ** 1.2)


def test_failed_stages_do_not_enter_the_fit():
    report = _report({100_000: 1.0, 1_000_000: 10.0})
    assert report["exponents"]["seconds"] == {"clean": 1.0, "served_fit": None}


def test_fragment_says_when_the_benchmark_has_not_run():
    text = scaling.scaling_fragment(None)
    assert "has not been run" in text and "make bench-scale" in text


def test_fragment_names_the_machine_the_synthetic_data_and_every_stage():
    text = scaling.scaling_fragment(_report({100_000: 1.0, 1_000_000: 10.0}),
                                    figure="../outputs/figures/scaling.png")
    assert "box-7" in text and "synthetic" in text
    assert "| clean |" in text and "failed" in text  # the failed stage is shown as such
    assert "31.0" in text  # the API's p99
    assert "{figure} ../outputs/figures/scaling.png" in text
    # exponent 1 from 0.1 M to 1 M: 10 s at 1 M -> 100 s at 10 M, labelled an extrapolation
    extra = text.split("Extrapolation, not a measurement")[1]
    clean_row = next(line for line in extra.splitlines() if line.startswith("| clean |"))
    assert "| 100.0 |" in clean_row and "10 M wall s (extrapolated)" in extra
    assert "served_fit" not in extra  # a failed stage is not extrapolated


def test_fragment_file_follows_the_json(tmp_path):
    paths = project_paths(tmp_path)
    out = scaling.write_scaling_fragment(paths)
    assert "has not been run" in out.read_text()
    paths.reports.mkdir(parents=True, exist_ok=True)
    (paths.reports / scaling.REPORT_NAME).write_text(
        json.dumps(_report({100_000: 1.0, 1_000_000: 12.0})))
    text = scaling.write_scaling_fragment(paths).read_text()
    assert "box-7" in text and "{figure}" not in text  # no figure file: no figure
    paths.figures.mkdir(parents=True, exist_ok=True)
    (paths.figures / scaling.FIGURE_NAME).write_bytes(b"png")
    assert "{figure} ../outputs/figures/scaling.png" in scaling.write_scaling_fragment(
        paths).read_text()


def test_a_skipped_stage_is_shown_as_skipped_not_failed():
    report = _report({100_000: 1.0, 1_000_000: 10.0})
    for run in report["runs"]:
        run["stages"]["spark"] = {"ok": False, "skipped": "Java 11 is too old", "seconds": 0.0}
    report["stage_order"].append("spark")
    row = next(line for line in scaling.scaling_fragment(report).splitlines()
               if line.startswith("| spark |"))
    assert "skipped" in row and "failed" not in row
    assert scaling.fit_exponents(report["runs"])["spark"] is None
