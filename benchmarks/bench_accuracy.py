"""Accuracy benchmark: cross-validated RMSE/MAE of the final rating model vs surprise.

One run, one set of folds (``surprise.model_selection.KFold(n_splits, random_state=seed)``
via ``recsys_utils.rating.comparison.cross_validate_model``) for three models:

* the **final model**: the rating model of the registered champion
  (``manifest["params"]["rating_params"]``), or ``blend.DEFAULT_RATING_PARAMS`` when
  nothing is registered;
* surprise's **SVD** with default parameters (``random_state=seed``);
* surprise's **BaselineOnly** with default parameters.

Data: the processed tables (``make pipeline`` first), else the embedded MovieLens read
directly. Prints a table, the ratios final/SVD and final/BaselineOnly, and a last line of
JSON; writes ``outputs/reports/bench_accuracy.json``. Asserts nothing (times vary with
the machine; the target, RMSE <= 0.855, is printed next to the figure).

    .venv/bin/python benchmarks/bench_accuracy.py              # 5 folds, ~2 min on 2 cores
    .venv/bin/python benchmarks/bench_accuracy.py --max-folds 1  # quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

from _common import load_tables
from surprise import SVD, BaselineOnly

from recsys_utils.errors import DataError
from recsys_utils.paths import project_paths
from recsys_utils.rating.blend import DEFAULT_RATING_PARAMS, build_rating_model
from recsys_utils.rating.comparison import cross_validate_model

TARGET_RMSE = 0.855


def final_rating_params() -> tuple[dict[str, Any], str]:
    """The champion's rating parameters, else the defaults."""
    try:
        from recsys_utils.lifecycle.registry import load_evaluated

        found = load_evaluated()  # a Spark batch champion: the recommender before it
        if found is not None:
            params = found[1]["params"].get("rating_params")
            if params:
                return params, f"registered version {found[1]['version']}"
    except (DataError, ImportError, KeyError, OSError):
        pass
    return DEFAULT_RATING_PARAMS, "blend.DEFAULT_RATING_PARAMS (no champion)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5, help="number of CV folds (default 5)")
    parser.add_argument("--max-folds", type=int, default=None,
                        help="evaluate only the first folds (quick runs)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes for the folds (results do not depend on it)")
    args = parser.parse_args(argv)
    model_df, titles, source = load_tables()
    params, origin = final_rating_params()
    print(f"data: {source}, {len(model_df):,} ratings; {args.folds}-fold CV, seed {args.seed}"
          + (f", first {args.max_folds} fold(s)" if args.max_folds else ""))
    print(f"final model: {origin}: components {list(params.get('components', {}))}")
    contenders = {
        "final model": lambda: build_rating_model(params, seed=args.seed, titles=titles),
        "surprise SVD (default)": lambda: SVD(random_state=args.seed),
        "surprise BaselineOnly (default)": lambda: BaselineOnly(verbose=False),
    }
    rows = []
    for name, factory in contenders.items():
        t0 = time.perf_counter()
        res = cross_validate_model(factory, model_df, n_folds=args.folds, seed=args.seed,
                                   max_folds=args.max_folds, n_jobs=args.jobs)
        rows.append({"model": name, "rmse": res["rmse"], "mae": res["mae"],
                     "rmse_std": res["rmse_std"], "fold_rmse": res["fold_rmse"],
                     "fit_s_per_fold": res["fit_time"], "test_s_per_fold": res["test_time"],
                     "wall_s": time.perf_counter() - t0})
        print(f"  {name:34s} RMSE {res['rmse']:.4f} (+-{res['rmse_std']:.4f})  "
              f"MAE {res['mae']:.4f}  fit {res['fit_time']:.1f}s/fold", flush=True)
    final, svd, base = rows
    ratios = {"rmse_final_over_svd": final["rmse"] / svd["rmse"],
              "rmse_final_over_baseline": final["rmse"] / base["rmse"],
              "mae_final_over_svd": final["mae"] / svd["mae"],
              "mae_final_over_baseline": final["mae"] / base["mae"]}
    print(f"final / SVD: RMSE x{ratios['rmse_final_over_svd']:.3f}, "
          f"MAE x{ratios['mae_final_over_svd']:.3f}; final / BaselineOnly: RMSE "
          f"x{ratios['rmse_final_over_baseline']:.3f}, MAE x{ratios['mae_final_over_baseline']:.3f}")
    met = final["rmse"] <= TARGET_RMSE
    print(f"target RMSE <= {TARGET_RMSE}: {'met' if met else 'NOT met'} ({final['rmse']:.4f})")
    report = {"benchmark": "accuracy", "data": source, "n_ratings": len(model_df),
              "n_folds": args.folds, "folds_evaluated": len(final["fold_rmse"]),
              "seed": args.seed, "final_model": origin, "rating_params": params,
              "results": rows, "ratios": ratios, "target_rmse": TARGET_RMSE,
              "target_met": met, "python": platform.python_version()}
    paths = project_paths().ensure()
    out = paths.reports / "bench_accuracy.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    print(json.dumps({"rmse_final": round(final["rmse"], 4), "rmse_svd": round(svd["rmse"], 4),
                      "rmse_baseline": round(base["rmse"], 4),
                      "mae_final": round(final["mae"], 4),
                      **{k: round(v, 4) for k, v in ratios.items()}, "target_met": met}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
