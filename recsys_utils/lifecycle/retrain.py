"""Continuous training: validate new ratings, append them, judge a challenger, promote or keep.

``recsys-retrain --new-ratings PATH`` (``make retrain NEW=PATH``) runs, in this order:

1. **Validate** the file with the cleaning step's own reader and rules
   (``recsys_utils.data.ratings.read_ratings_file``: header, field count, quoting,
   ``validate_ratings``, exact duplicates); rejected rows go to
   ``data/interim/rejected_retrain_<stamp>.parquet`` with file, line, reason and raw text,
   and an accounting line ``read = kept + rejected + duplicates`` is printed.
2. **Deduplicate against the store**: ratings already stored (same user, title,
   timestamp and score) are counted and skipped. If nothing is new, nothing is trained:
   the decision record says ``skipped`` (same data + same parameters + same seed would
   rebuild the same model). Running twice with the same file therefore adds nothing and
   trains nothing the second time.
2b. **Policy** (the trigger policy ``05_monitoring`` replays, :func:`policy_check`): the
   signals of the new ratings — score PSI against the store (the champion's training
   window), the share of them from users the store has never seen, and the champion's
   RMSE on them relative to its RMSE on the first batch it served — against the
   thresholds (``--psi-threshold`` etc., else those ``05_monitoring`` saved in
   ``outputs/reports/monitoring.json``, else ``monitoring.DEFAULT_THRESHOLDS``). When no
   signal crosses its threshold the new ratings are appended (and kept in the history)
   and no challenger is trained: decision ``kept champion (policy: no retrain)``.
   ``--force`` retrains regardless. A Spark batch champion (``06_scale_out``'s stored lists)
   has no parameters to retrain with: its new ratings are appended, decision ``kept
   champion (Spark batch version)``, and the record says how ``06`` refits it.
3. **Holdout** (the protocol): the newest ``holdout_fraction`` (default 50%) of the
   ratings this run adds, by timestamp (or, with ``holdout_days``, those within that many
   days of the newest one). These ratings were in no model's training data — every model
   is trained from the store and they were not in it — so the champion is judged as it
   is, without leakage.
4. **Challenger**: the champion's parameters (``manifest["params"]``: ``rating_params``,
   ``ranking_params``, ``seed``; with ``--retune`` each rating component is re-tuned by
   cross-validation and the ranking (ranker, parameters, re-ranker) chosen again by
   ``03_modeling``'s rule, both inside the challenger's training data, never on the
   holdout) trained on the store *plus the new ratings minus the holdout*.
5. **Judge** both on the same holdout: RMSE on every holdout rating, NDCG@10 over the
   holdout users with at least one relevant rating (score >= 4), candidates = every
   title the user had not rated before the holdout (the same for both models).
6. **Rule**: promote iff ``rmse_challenger <= rmse_champion + tolerance`` and
   ``ndcg_challenger >= ndcg_champion - ndcg_tolerance`` (default tolerance 0.005 each).
7. **Register**: the challenger is refit with the same parameters on the whole store
   (holdout included: it is the most recent data and will be the most useful for
   serving) and registered — promoted or not, so a kept champion's rival stays
   auditable. Its manifest carries the judged metrics and the holdout's description.
8. **Commit**: the new ratings are written to the history
   (``data/history/<stamp>_accepted.csv``, ``recsys_utils.data.store.merge_history``:
   the cleaning step replays it, so a rebuild keeps them), appended to the store
   atomically, then the champion pointer moves (if promoted), then the decision record
   is written to ``outputs/reports/decisions/<stamp>.json`` and printed.

Crash safety — the invariant. The store and the registry are *consistent* when

* ``ratings``, ``model`` and ``analytics`` agree on the same ratings fingerprint (the
  stamp each table carries, ``recsys_utils.data.store``), and
* the champion pointer names a registered version whose files verify against its
  manifest: the version whose manifest fingerprint matches the store (just promoted),
  or the champion before the last transaction (kept, rolled back), and
* no transaction is half done: no ``pending`` decision record, no ``.staging-*`` folder
  or ``.*.tmp`` file, no version registered by a transaction that did not commit.

Every command that changes the store or the pointer (a retrain, a hold-back, a
rollback, a promotion) takes the store lock and first runs :func:`recover`, which
restores the invariant after a crash at *any* durable write: a retrain or hold-back
writes a ``pending`` record (the expected ratings fingerprints before and after, the
version to promote, the files it creates: its history file, a hold-back's CSV) before it
changes the store; recovery rolls
the transaction forward when the store already holds the new ratings (rebuilding stale
derived tables, then moving the pointer) and back otherwise (removing its unpromoted
version and files). Either way the state equals that of the old state or of an
uninterrupted run (``tests/test_crash.py`` kills the command at every durable write).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_utils.atomic import atomic_write, atomic_write_text, remove_temp_files
from recsys_utils.data.store import (
    ACCEPTED,
    HELD_BACK,
    append_ratings,
    as_history_rows,
    derive_model,
    history_file,
    load_store,
    rating_keys,
    recover_store,
    store_lock,
    write_history,
    write_store,
)
from recsys_utils.data.tables import (
    RATINGS_FILE,
    ratings_fingerprint,
    read_json_object,
    read_stamp,
    read_table,
)
from recsys_utils.errors import DataError, arg_type, excerpt, run_command
from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.lifecycle import registry
from recsys_utils.paths import ProjectPaths, project_paths, relative_posix
from recsys_utils.ranking.metrics import ndcg_at_k

__all__ = [
    "DEFAULT_TOLERANCE",
    "Decision",
    "PolicyCheck",
    "decide",
    "policy_check",
    "select_holdout",
    "compare_on_holdout",
    "evaluate_on_holdout",
    "run_retrain",
    "hold_back",
    "recover",
    "main",
]

DEFAULT_TOLERANCE = 0.005
RELEVANCE_THRESHOLD = 4.0
Trainer = Callable[[pd.DataFrame, pd.DataFrame, dict], Any]


# --------------------------------------------------------------------------- the rule


@dataclass(frozen=True)
class Decision:
    """The promotion decision and why."""

    promote: bool
    reasons: list[str]
    rule: str


def decide(champion: dict[str, float], challenger: dict[str, float],
           tolerance: float = DEFAULT_TOLERANCE, ndcg_tolerance: float | None = None,
           ndcg_key: str = "ndcg@10", paired: dict[str, float] | None = None) -> Decision:
    """Promote iff the challenger is not worse than the champion beyond the tolerances.

    ``rmse`` (lower is better) may be at most ``tolerance`` higher, ``ndcg@10`` (higher
    is better) at most ``ndcg_tolerance`` (default: ``tolerance``) lower. Equal within
    tolerance promotes: the challenger has seen more recent data. ``paired``
    (``compare_on_holdout``): the NDCG reason also gives the paired difference's standard
    error and user count, so a reader sees how much of the difference is noise.
    """
    ndcg_tolerance = tolerance if ndcg_tolerance is None else ndcg_tolerance
    rule = (f"promote iff rmse_challenger <= rmse_champion + {tolerance:g} "
            f"and {ndcg_key}_challenger >= {ndcg_key}_champion - {ndcg_tolerance:g}")
    reasons = []
    ok = True
    d_rmse = challenger["rmse"] - champion["rmse"]
    if d_rmse <= tolerance:
        reasons.append(f"rmse {challenger['rmse']:.4f} vs {champion['rmse']:.4f} "
                       f"({d_rmse:+.4f}, within +{tolerance:g})")
    else:
        ok = False
        reasons.append(f"rmse worse: {challenger['rmse']:.4f} vs {champion['rmse']:.4f} "
                       f"({d_rmse:+.4f} > +{tolerance:g})")
    c_ndcg, k_ndcg = challenger.get(ndcg_key), champion.get(ndcg_key)
    if c_ndcg is None or k_ndcg is None or (isinstance(c_ndcg, float) and math.isnan(c_ndcg)):
        reasons.append(f"{ndcg_key} not measured (no holdout user with a relevant rating)")
    else:
        d_ndcg = c_ndcg - k_ndcg
        noise = (f"; paired s.e. {paired['se']:.4f} over {paired['n_users']} users"
                 if paired and paired["n_users"] > 1 else "")
        if d_ndcg >= -ndcg_tolerance:
            reasons.append(f"{ndcg_key} {c_ndcg:.4f} vs {k_ndcg:.4f} "
                           f"({d_ndcg:+.4f}, within -{ndcg_tolerance:g}{noise})")
        else:
            ok = False
            reasons.append(f"{ndcg_key} worse: {c_ndcg:.4f} vs {k_ndcg:.4f} "
                           f"({d_ndcg:+.4f} < -{ndcg_tolerance:g}{noise})")
    return Decision(promote=ok, reasons=reasons, rule=rule)


# --------------------------------------------------------------------------- the policy

#: Signal name -> (threshold name, label in the printed decision).
_SIGNALS = {"psi": ("psi_threshold", "PSI"), "error_increase": ("error_increase", "error increase"),
            "unknown_users": ("new_user_threshold", "ratings from unseen users")}


@dataclass(frozen=True)
class PolicyCheck:
    """The trigger policy applied to one batch: its signals, the thresholds, the verdict."""

    retrain: bool
    signals: dict[str, float]
    thresholds: dict[str, float]
    source: str
    fired: list[str]
    reference: str

    def decision_line(self) -> str:
        """``retrain: PSI 1.23 > 1`` or ``no retrain: all signals under thresholds``."""
        if not self.retrain:
            return "no retrain: all signals under thresholds"
        return "retrain: " + "; ".join(self.fired)

    def signals_line(self) -> str:
        parts = [f"{label} {self.signals[name]:.4g} (threshold {self.thresholds[t]:g})"
                 for name, (t, label) in _SIGNALS.items()]
        return f"signals of the new ratings: {', '.join(parts)}; thresholds from {self.source}"

    def summary(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "signals": self.signals,
                "thresholds": {k: (None if math.isinf(v) else v) for k, v in self.thresholds.items()},
                "thresholds_from": self.source, "fired": self.fired,
                "error_reference": self.reference, "decision": self.decision_line()}


def policy_check(signals: dict[str, float], thresholds: dict[str, float], source: str = "given",
                 reference: str = "") -> PolicyCheck:
    """Retrain iff a signal exceeds its threshold (``monitoring.simulate_trigger_policy``'s rule;
    ``inf`` disables a signal)."""
    fired = [f"{label} {signals[name]:.4g} > {thresholds[t]:g}"
             for name, (t, label) in _SIGNALS.items() if signals[name] > thresholds[t]]
    return PolicyCheck(bool(fired), signals, thresholds, source, fired, reference)


def _rmse(model: Any, rows: pd.DataFrame) -> float:
    pred = np.array([model.predict(int(u), str(i))
                     for u, i in zip(rows["user"], rows["item"], strict=True)])
    return float(np.sqrt(np.mean((pred - rows["score"].to_numpy(np.float64)) ** 2)))


def _first_served_rmse(paths: ProjectPaths, champion: str) -> tuple[float | None, str]:
    """The champion's RMSE on the first batch it served (from the decision records)."""
    folder = _decisions_dir(paths)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = read_json_object(path, "delete or fix that decision record")
        rmse = ((record.get("policy") or {}).get("signals") or {}).get("champion_rmse")
        if (record.get("champion_before") == champion and rmse is not None
                and record.get("decision") != "abandoned"):
            return float(rmse), f"its RMSE on the first batch it served ({path.stem})"
    return None, "this is the first batch it serves (error increase 0 by definition)"


def _batch_policy(paths: ProjectPaths, champion_model: Any, champion: str,
                  store_model: pd.DataFrame, fresh: pd.DataFrame,
                  thresholds: dict[str, float | None] | None) -> PolicyCheck:
    """The signals of ``fresh`` (model-table rows) as ``05_monitoring`` defines them."""
    from recsys_utils.lifecycle.monitoring import read_thresholds, score_psi

    chosen, source = read_thresholds(paths)
    given = {k: v for k, v in (thresholds or {}).items() if v is not None}
    if given:
        chosen.update(given)
        source += "; " + ", ".join(f"{k} {v:g} given" for k, v in given.items())
    rmse = _rmse(champion_model, fresh)
    first, reference = _first_served_rmse(paths, champion)
    signals = {
        "psi": score_psi(store_model["score"], fresh["score"]),
        "error_increase": 0.0 if first is None else rmse / first - 1.0,
        "unknown_users": float((~fresh["user"].isin(store_model["user"])).mean()),
        "champion_rmse": rmse,
    }
    return policy_check(signals, chosen, source, reference)


# --------------------------------------------------------------------------- holdout


def select_holdout(added_model: pd.DataFrame, fraction: float = 0.5,
                   days: float | None = None) -> pd.Series:
    """Boolean mask over ``added_model`` (model-table rows): the newest ratings.

    ``days``: ratings within ``days`` of the newest added rating; otherwise the newest
    ``ceil(fraction * n)`` by (timestamp, user, item) — a deterministic order.
    """
    if added_model.empty:
        return pd.Series(False, index=added_model.index)
    ts = pd.to_datetime(added_model["timestamp"])
    if days is not None:
        return ts > ts.max() - pd.Timedelta(days=days)
    if not 0 < fraction <= 1:
        raise ValueError(f"holdout fraction must be in (0, 1], got {fraction}")
    order = added_model.assign(_ts=ts).sort_values(["_ts", "user", "item"], kind="stable").index
    n = math.ceil(fraction * len(added_model))
    mask = pd.Series(False, index=added_model.index)
    mask.loc[order[len(order) - n:]] = True
    return mask


def evaluate_on_holdout(model: Any, holdout: pd.DataFrame, seen: pd.DataFrame, k: int = 10,
                        relevance: float = RELEVANCE_THRESHOLD) -> dict[str, float]:
    """RMSE and NDCG@k of ``model`` on ``holdout`` (model-table rows).

    ``seen``: the ratings before the holdout (model table); a user's titles there are
    removed from her candidates for both models alike. NDCG is
    ``recsys_utils.ranking.metrics.ndcg_at_k`` (binary relevance: holdout score >= ``relevance``),
    averaged over the holdout users with at least one relevant rating. Ranking uses
    ``model.recommend(user, n)`` (asking for extra titles to survive that filter);
    RMSE uses ``model.predict(user, item)``.
    """
    return _holdout_metrics(model, holdout, seen, k, relevance)[0]


def _holdout_metrics(model: Any, holdout: pd.DataFrame, seen: pd.DataFrame, k: int,
                     relevance: float) -> tuple[dict[str, float], dict[int, float]]:
    """``evaluate_on_holdout``'s metrics and each ranked user's NDCG@k."""
    pred = np.array([model.predict(int(u), str(i))
                     for u, i in zip(holdout["user"], holdout["item"], strict=True)])
    err = pred - holdout["score"].to_numpy(np.float64)
    rated_before = seen.groupby("user")["item"].agg(set)
    ndcgs: dict[int, float] = {}
    relevant_by_user = (holdout[holdout["score"] >= relevance]
                        .groupby("user")["item"].agg(lambda s: set(map(str, s))))
    for user, relevant in relevant_by_user.items():
        exclude = rated_before.get(user, set())
        recs = model.recommend(int(user), n=k + len(exclude))
        items = [str(i) for i in recs.items["item_id"] if i not in exclude][:k]
        ndcgs[int(user)] = ndcg_at_k(items, relevant, k)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        f"ndcg@{k}": float(np.mean(list(ndcgs.values()))) if ndcgs else float("nan"),
        "n_ratings": len(holdout),
        "n_users": int(holdout["user"].nunique()),
        "n_ranked_users": len(ndcgs),
    }, ndcgs


def compare_on_holdout(champion: Any, challenger: Any, holdout: pd.DataFrame,
                       seen: pd.DataFrame, k: int = 10,
                       relevance: float = RELEVANCE_THRESHOLD
                       ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Both models' ``evaluate_on_holdout`` metrics and their paired NDCG@k difference
    (challenger - champion, per user): its mean, standard error and number of users. A
    holdout of a few dozen users gives an s.e. of several hundredths, larger than the
    gate's tolerance: the record says so next to the decision."""
    (m_champion, by_champion), (m_challenger, by_challenger) = (
        _holdout_metrics(model, holdout, seen, k, relevance) for model in (champion, challenger))
    diff = np.array([by_challenger[u] - by_champion[u] for u in by_champion])
    paired = {"difference": float(diff.mean()) if diff.size else float("nan"),
              "se": float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1
              else float("nan"),
              "n_users": int(diff.size)}
    return m_champion, m_challenger, paired


# --------------------------------------------------------------------------- training


def default_trainer(model_df: pd.DataFrame, titles: pd.DataFrame, params: dict) -> Any:
    """Train the project's recommender with a manifest's parameters (with the stored top-N
    lists when the champion had them: ``precomputed_depth``, so the API stays fast)."""
    from recsys_utils.ranking.precomputed import attach_precomputed
    from recsys_utils.ranking.recommender import train_recommender

    rec = train_recommender(model_df, titles, params["rating_params"],
                            params["ranking_params"], int(params.get("seed", 42)))
    if params.get("precomputed_depth"):
        attach_precomputed(rec, int(params["precomputed_depth"]))
    return rec


#: How a Spark batch champion takes new ratings: 06 refits it, a retrain here cannot.
SPARK_REFRESH = ("refit its lists on the updated store with `recsys-pipeline --only 06` (it "
                 "registers a new version), then promote that version with "
                 "`recsys-retrain --rollback VERSION`")


def _check_params(manifest: dict, hint: str = SPARK_REFRESH) -> dict:
    if registry.is_batch_manifest(manifest):
        raise DataError(f"the champion {manifest.get('version')} is a Spark batch version "
                        f"(06_scale_out), which is not retrained here: {hint}")
    params = manifest.get("params") or {}
    missing = [k for k in ("rating_params", "ranking_params") if k not in params]
    if missing:
        raise DataError(
            f"the champion's manifest ({manifest.get('version')}) has no params {missing}; "
            "cannot retrain with the champion's parameters (re-run `make pipeline`)"
        )
    return params


def retune_params(model_df: pd.DataFrame, params: dict, grid: str = "small", n_folds: int = 3,
                  log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """Re-tune every component of the champion's rating blend on ``model_df`` only.

    ``model_df`` is the challenger's training data (the holdout is not in it), and each
    family is searched with ``recsys_utils.rating.tuning.tune_family`` (the documented ``small``
    grid, ``n_folds``-fold cross-validation inside ``model_df``), so re-tuning never sees
    the ratings the decision is judged on. Ranking parameters are kept (``rechoose_ranking``
    chooses them again). Returns ``(new_params, summary)``; components whose family has no
    grid are kept as they are.
    """
    import copy

    from recsys_utils.rating.tuning import FAMILIES, component_params, tune_family

    family_of = {name: family for family, (_, name) in FAMILIES.items()}
    new = copy.deepcopy(params)
    components = new.get("rating_params", {}).get("components") or {}
    summary: dict[str, Any] = {"grid": grid, "n_folds": n_folds,
                               "data": "challenger training data (holdout excluded)"}
    for name in list(components):
        family = family_of.get(name)
        if family is None:
            summary[name] = "kept (no tuning grid)"
            continue
        log(f"re-tuning {name} ({family}, {grid} grid, {n_folds}-fold CV) ...")
        result = tune_family(model_df, family, grid=grid, n_folds=n_folds,
                             seed=int(params.get("seed", 42)))
        _, tuned = component_params(family, result["best_params"])
        components[name] = tuned
        summary[name] = {"params": tuned, "cv_rmse": round(result["best_rmse"], 4)}
    # the manifest's record of where the rating parameters came from follows them
    new.setdefault("tuning", {})["rating"] = {
        "tuned": True, "chosen_by": "recsys-retrain --retune, on the challenger's training "
                                    "data (holdout excluded)", **summary}
    return new, summary


def rechoose_ranking(model_df: pd.DataFrame, titles: pd.DataFrame, params: dict,
                     log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """Choose the ranking again on ``model_df`` only, the way the champion's was chosen.

    The champion's manifest says how (``params["tuning"]["ranking"]``: the grid, the
    coverage floor, ``k``, each user's validation share, whether a re-ranker and a new-user
    policy were tried);
    ``evaluation.tune_ranking`` makes the same choice on the challenger's training data,
    each user's latest share of it as validation (the holdout is not in it: it plays the
    part ``04_evaluation``'s test window plays for ``03_modeling``, so the validation is
    carved once, from the freshest ratings). The new record replaces the old one in the
    returned parameters, so the challenger's manifest traces every ranking value to its
    validation result. A ranking that was not chosen on data (``choose_ranking=False``)
    is kept, and so is the champion's when these ratings cannot support a choice.
    Returns ``(new_params, summary)``."""
    import copy
    import functools

    from recsys_utils.ranking.evaluation import per_user_split, tune_ranking

    record = params.get("tuning", {}).get("ranking", {})
    if "grid" not in record:
        return params, {"outcome": "kept: the champion's ranking was not chosen on data ("
                        f"{record.get('source', 'no tuning record')})"}
    protocol = {"k": 10, "min_coverage_ratio": 5.0, "holdout_fraction": 0.2,
                "holdout_n": None, "reranker_tried": bool(record.get("rerank", {}).get("tried")),
                "new_users_tried": False, **record.get("protocol", {})}  # manifests before the protocol was recorded
    log(f"choosing the ranking again ({len(record['grid'])} rankers, floor "
        f"{protocol['min_coverage_ratio']:g}x popularity's coverage) ...")
    try:
        choice = tune_ranking(
            model_df, titles, record["grid"], k=int(protocol["k"]),
            min_coverage_ratio=float(protocol["min_coverage_ratio"]),
            holdout_fraction=float(protocol["holdout_fraction"]),
            holdout_n=protocol["holdout_n"], seed=int(params.get("seed", 42)),
            rerank=protocol["reranker_tried"], new_users=protocol["new_users_tried"],
            validation=functools.partial(per_user_split, fraction=protocol["holdout_fraction"],
                                         n=protocol["holdout_n"]))
    except DataError as err:
        log(f"kept the champion's ranking: {err}")
        return params, {"outcome": f"kept the champion's ranking: {err}"}
    log(f"ranking {choice.summary}")
    new = copy.deepcopy(params)
    new["ranking_params"] = choice.best_params
    new.setdefault("tuning", {})["ranking"] = {
        **choice.record(), "chosen_by": "recsys-retrain --retune, on the challenger's "
                                        "training data (holdout excluded)"}
    old = params.get("ranking_params", {})
    changed = sorted(key for key, value in choice.best_params.items() if old.get(key) != value)
    return new, {"outcome": choice.summary, "changed": changed,
                 "validation": {key: choice.best_row[key] for key in ("ndcg", "ndcg_ratio",
                                                                      "coverage_ratio")}}


# --------------------------------------------------------------------------- helpers


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")[:-4] + "Z"  # centiseconds


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _decisions_dir(paths: ProjectPaths) -> Path:
    return paths.reports / "decisions"


def _record_name(paths: ProjectPaths, stamp: str) -> str:
    """The decision record of a run, relative to the project (named in its version's manifest)."""
    return relative_posix(_decisions_dir(paths) / f"{stamp}.json", paths.root)


def _write_record(paths: ProjectPaths, record: dict) -> Path:
    path = _decisions_dir(paths) / f"{record['stamp']}.json"
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
    return path


def _titles(paths: ProjectPaths) -> pd.DataFrame:
    return read_table("titles", paths)


def _model_view(ratings: pd.DataFrame) -> pd.DataFrame:
    """Ratings rows as model-table rows (one per rating, no per-pair reduction)."""
    return pd.DataFrame({
        "user": ratings["user_id"].astype("int32").to_numpy(),
        "item": ratings["item_id"].astype(str).to_numpy(),
        "score": ratings["score"].astype("float32").to_numpy(),
        "timestamp": pd.to_datetime(ratings["timestamp"]).astype("datetime64[s]").to_numpy(),
    }, index=ratings.index)


def _store_fingerprint(paths: ProjectPaths) -> str:
    """The fingerprint of the ratings in the store (its stamp; computed for unstamped tables)."""
    return read_stamp(paths.processed / RATINGS_FILE) or ratings_fingerprint(
        read_table("ratings", paths))


def _finish_pending(paths: ProjectPaths, record: dict) -> str:
    """Roll a crashed transaction forward (the store holds its ratings) or back; its status."""
    tx = record.get("transaction")
    if tx is None:  # a record of older code: judged by the model table's fingerprint, as then
        challenger = (record.get("challenger") or {}).get("version")
        tx = {"version": challenger, "champion_before": record.get("champion_before"),
              "promote": challenger if record.get("decision") == "promoted" else None}
        forward = (data_fingerprint(load_store(paths)[1])
                   == (record.get("store") or {}).get("fingerprint_after"))
    else:
        forward = _store_fingerprint(paths) == tx.get("ratings_after")
    version = tx.get("version")
    # A damaged pointer reads as none: the promotion below then refuses to move it (it
    # cannot re-check the champion), and the version being undone was never promoted.
    champion = registry.champion_version(paths, strict=False)
    if forward:
        status = "done (recovered)"
        promote = tx.get("promote")
        if promote and champion != promote:
            try:
                registry.promote(promote, paths, reason=f"recovered {record['stamp']}",
                                 expected=tx.get("champion_before"))
            except DataError as exc:
                status = f"done (recovered; not promoted: {exc})"
        record["champion_after"] = registry.champion_version(paths, strict=False)
        return status
    # The store never saw this transaction's ratings: undo what it created.
    if version and version != champion:
        registry.remove_version(version, paths)
    for name in tx.get("creates", []):
        (paths.root / name).unlink(missing_ok=True)
    record["decision"] = "abandoned"
    return "abandoned (crashed before the store changed; nothing of it kept)"


def _orphan_versions(paths: ProjectPaths, records: dict[str, dict]) -> list[str]:
    """Versions registered by a transaction that never wrote its record, or abandoned it.

    None while the pointer is damaged (the champion could be any of them), and never a
    version whose manifest is damaged (its record is unknown): both wait for a repair.
    """
    if registry.pointer_problem(paths) is not None:
        return []
    pointer = registry.champion_version(paths)
    orphans = []
    for version in registry.list_versions(paths):
        if version == pointer:
            continue
        manifest, _ = registry.manifest_or_damage(version, paths)
        link = (manifest or {}).get("decision_record")
        if not link:
            continue
        record = records.get(Path(link).stem)
        if record is None or record.get("decision") == "abandoned":
            orphans.append(version)
    return orphans


def recover(paths: ProjectPaths | None = None, log: Callable[[str], None] = print) -> list[str]:
    """Restore the invariant (module docstring) after a crash; returns what was done.

    Run first, under the store lock, by every command that changes the store or the
    pointer. Rebuilds stale derived tables, removes temporary files and staging folders,
    finishes ``pending`` records (forward or back), removes orphan versions, and logs a
    pointer change the history missed. Does nothing when the state is consistent.
    """
    paths = paths or project_paths()
    done: list[str] = []
    with store_lock(paths):
        done += [f"rebuilt {name} from the ratings" for name in recover_store(paths)]
        done += registry.recover_registry(paths)
        for folder in (_decisions_dir(paths), paths.interim, paths.raw, paths.history):
            if folder.is_dir():
                done += [f"removed {name}" for name in remove_temp_files(folder)]
        folder = _decisions_dir(paths)
        records = {}
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            record = read_json_object(path, "delete or fix that decision record")
            if record.get("status") == "pending":
                record["status"] = _finish_pending(paths, record)
                _write_record(paths, record)
                done.append(f"pending decision {path.name}: {record['status']}")
            records[path.stem] = record
        for version in _orphan_versions(paths, records):
            registry.remove_version(version, paths)
            done.append(f"removed {version} (registered by a transaction that did not commit)")
    for line in done:
        log(f"recovered: {line}")
    return done


# --------------------------------------------------------------------------- the run


def run_retrain(new_ratings: str | Path, *, paths: ProjectPaths | None = None,
                tolerance: float = DEFAULT_TOLERANCE, ndcg_tolerance: float | None = None,
                holdout_fraction: float = 0.5, holdout_days: float | None = None,
                min_holdout: int = 50, retune: bool = False, k: int = 10,
                thresholds: dict[str, float | None] | None = None, force: bool = False,
                trainer: Trainer | None = None, log: Callable[[str], None] = print,
                argv: Sequence[str] | None = None) -> dict:
    """Validate, append, judge and (maybe) promote; returns the decision record (see module doc).

    ``thresholds``: trigger thresholds by name (``psi_threshold``, ``error_increase``,
    ``new_user_threshold``; None = the saved or default one); ``force``: retrain whatever
    the policy says.

    Raises:
        DataError: the file, the store or the champion is missing or unusable.
    """
    from recsys_utils.data.linking import rating_ids
    from recsys_utils.data.ratings import read_ratings_file

    paths = paths or project_paths()
    trainer = trainer or default_trainer
    new_path = Path(new_ratings)
    if not new_path.is_absolute() and not new_path.exists():
        new_path = paths.root / new_path
    if not new_path.is_file():
        raise DataError(f"new ratings file {new_ratings} not found "
                        "(expected a CSV with header userId,rating,timestamp,movieId)")
    registry.champion_manifest(paths)  # no champion: the DataError says what to run
    titles = _titles(paths)

    stamp = _stamp()
    source = relative_posix(new_path, paths.root)
    got = read_ratings_file(new_path, rating_ids(titles), source_file=source)
    account = got.accounts[0]
    rejected_file = None
    if len(got.rejected):
        rejected_path = paths.interim / f"rejected_retrain_{stamp}.parquet"
        paths.interim.mkdir(parents=True, exist_ok=True)
        atomic_write(rejected_path, lambda tmp: got.rejected.to_parquet(tmp, index=False))
        rejected_file = relative_posix(rejected_path, paths.root)
    log("accounting: " + account.line() + (f"; rejected rows -> {rejected_file}"
                                           if rejected_file else ""))
    if not account.adds_up:  # pragma: no cover - a bug in the reader, not in the data
        raise AssertionError(account.line())
    if account.kept == 0:
        # A wrong header or a file of bad rows is a user mistake, not "nothing new".
        reasons = (", ".join(sorted(got.rejected["reason"].astype(str).unique()))
                   if len(got.rejected) else "no data rows")
        why = f"{reasons}; {account.note}" if account.note else reasons
        raise DataError(f"{source}: no valid rating to add ({why}); expected a CSV with header "
                        "userId,rating,timestamp,movieId"
                        + (f"; rejected rows in {rejected_file}" if rejected_file else ""))

    record: dict[str, Any] = {
        "stamp": stamp,
        "created_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "command": list(argv) if argv is not None else None,
        "new_ratings": {"path": source, "sha256": _sha256(new_path), "read": account.read,
                        "kept": account.kept, "rejected": account.rejected,
                        "duplicates_in_file": account.duplicates, "note": account.note,
                        "rejected_file": rejected_file},
    }

    with store_lock(paths):  # held to the end: nobody moves the pointer while we judge
        recover(paths, log)  # may move the pointer: load the champion after it
        champion_model, champion_manifest = registry.load_champion(paths)
        spark_champion = registry.is_batch_manifest(champion_manifest)
        params = None if spark_champion else _check_params(champion_manifest)
        record["champion_before"] = champion_manifest["version"]
        store_ratings, store_model = load_store(paths)
        keys_now = rating_keys(store_ratings)
        batch = got.ratings
        fresh = batch[~rating_keys(batch).isin(keys_now)].reset_index(drop=True)
        record["store"] = {"before": len(store_ratings), "already_present": len(batch) - len(fresh),
                           "new": len(fresh)}
        log(f"store: {len(fresh):,} new ratings, {len(batch) - len(fresh):,} already in the store "
            f"({len(store_ratings):,} stored)")

        if fresh.empty:
            record.update(decision="skipped", status="done",
                          reasons=["no new ratings: the store already holds every kept row, "
                                   "so a challenger would be trained on the same data"],
                          champion_after=champion_manifest["version"])
            return _finish(paths, record, log)

        # The rows as the history file will hold them (the rebuild's source and lines).
        fresh = as_history_rows(fresh, history_file(paths, stamp, ACCEPTED), paths)
        if spark_champion:  # its lists cannot be refit here, but no accepted rating is lost
            if force or retune:
                log("--force / --retune: ignored, a Spark batch champion is refit by 06")
            record.update(decision="kept champion (Spark batch version)", status="pending",
                          reasons=[f"the champion {champion_manifest['version']} is a Spark "
                                   f"batch version (06_scale_out): ratings appended, no "
                                   f"challenger trained; {SPARK_REFRESH}"],
                          champion_after=champion_manifest["version"])
            return _commit(paths, record, store_ratings, fresh, None, None, log)
        fresh_model = _model_view(fresh)
        policy = _batch_policy(paths, champion_model, champion_manifest["version"],
                               store_model, fresh_model, thresholds)
        record["policy"] = {**policy.summary(), "forced": force}
        log(policy.signals_line())
        log(policy.decision_line() + (" (--force: retraining anyway)"
                                      if force and not policy.retrain else ""))
        if not (policy.retrain or force):
            record.update(decision="kept champion (policy: no retrain)", status="pending",
                          reasons=[f"{policy.decision_line()} ({policy.signals_line()}); "
                                   "ratings appended, no challenger trained"],
                          champion_after=champion_manifest["version"])
            return _commit(paths, record, store_ratings, fresh, None, None, log)
        mask = select_holdout(fresh_model, holdout_fraction, holdout_days).to_numpy()
        holdout = fresh_model[mask]
        record["holdout"] = {
            "rule": (f"ratings added by this run within {holdout_days:g} days of the newest"
                     if holdout_days is not None else
                     f"newest {holdout_fraction:.0%} of the ratings added by this run"),
            "n_ratings": len(holdout), "n_users": int(holdout["user"].nunique()),
            "from": str(holdout["timestamp"].min()), "to": str(holdout["timestamp"].max()),
            "relevance": f"score >= {RELEVANCE_THRESHOLD:g}", "k": k,
            "candidates": "all titles the user had not rated before the holdout",
        }
        if len(holdout) < min_holdout:
            record.update(decision="kept champion (holdout too small)", status="pending",
                          reasons=[f"holdout has {len(holdout)} ratings < min_holdout "
                                   f"{min_holdout}; ratings appended, no challenger trained"],
                          champion_after=champion_manifest["version"])
            return _commit(paths, record, store_ratings, fresh, None, None, log)

        all_ratings = pd.concat([store_ratings, fresh], ignore_index=True)
        judge_ratings = all_ratings[~rating_keys(all_ratings).isin(rating_keys(fresh[mask]))]
        judge_model_df = derive_model(judge_ratings)
        full_model_df = derive_model(all_ratings)

        if retune:
            params, tuning = retune_params(judge_model_df, params, log=log)
            params, tuning["ranking"] = rechoose_ranking(judge_model_df, titles, params, log=log)
            record["retune"] = tuning
        log(f"training the challenger on {len(judge_model_df):,} ratings (holdout "
            f"{len(holdout):,} ratings of {holdout['user'].nunique()} users kept out) ...")
        # the judged model only scores the holdout: no stored lists (a pass over every user)
        judged = trainer(judge_model_df, titles,
                         {k: v for k, v in params.items() if k != "precomputed_depth"})
        m_champion, m_challenger, paired = compare_on_holdout(champion_model, judged, holdout,
                                                              judge_model_df, k=k)
        decision = decide(m_champion, m_challenger, tolerance, ndcg_tolerance,
                          ndcg_key=f"ndcg@{k}", paired=paired)
        log("refitting the challenger on the whole store "
            f"({len(full_model_df):,} ratings) ...")
        final = trainer(full_model_df, titles, params)
        fp_after = data_fingerprint(full_model_df)
        metrics = {**m_challenger,
                   "holdout": record["holdout"],
                   "champion_on_holdout": m_champion,
                   f"paired_ndcg@{k}_vs_champion": paired,
                   "judged_model": "same params trained without the holdout; this version is "
                                   "the refit on the whole store"}
        version = registry.register_model(
            final, params=params, metrics=metrics, data_fingerprint=fp_after, paths=paths,
            promote=False, notes=f"challenger from retrain {stamp} ({source})",
            extra={"decision_record": _record_name(paths, stamp)})
        record.update(
            decision="promoted" if decision.promote else "kept champion",
            status="pending",
            rule=decision.rule,
            reasons=decision.reasons,
            tolerance={"rmse": tolerance,
                       f"ndcg@{k}": tolerance if ndcg_tolerance is None else ndcg_tolerance},
            champion={"version": champion_manifest["version"],
                      "data_fingerprint": champion_manifest.get("data_fingerprint"),
                      "metrics": m_champion},
            challenger={"version": version, "data_fingerprint": fp_after,
                        "params": params, "metrics": m_challenger},
        )
        record["store"]["fingerprint_after"] = fp_after
        return _commit(paths, record, store_ratings, fresh, version,
                       version if decision.promote else None, log)


def _transaction(record: dict, before: pd.DataFrame, after: pd.DataFrame, version: str | None,
                 promote: str | None, creates: Sequence[str] = ()) -> dict:
    """What recovery needs to finish or undo a crashed transaction (see the invariant)."""
    return {"ratings_before": ratings_fingerprint(before), "ratings_after": ratings_fingerprint(after),
            "version": version, "promote": promote,
            "champion_before": record["champion_before"], "creates": list(creates)}


def _move_pointer(paths: ProjectPaths, record: dict, promote: str) -> None:
    """Promote, re-checking under the lock that the champion is still the one judged."""
    try:
        registry.promote(promote, paths, reason=f"{record['decision']} {record['stamp']}",
                         expected=record["champion_before"])
    except DataError as exc:
        record["reasons"] = [*record.get("reasons", []), f"not promoted: {exc}"]


def _commit(paths: ProjectPaths, record: dict, store_ratings: pd.DataFrame, fresh: pd.DataFrame,
            version: str | None, promote: str | None, log: Callable[[str], None]) -> dict:
    """The transaction: pending record, history file, append to the store, move the pointer,
    done record. ``fresh`` holds the rows as the history file does (:func:`as_history_rows`)."""
    merged = pd.concat([store_ratings, fresh], ignore_index=True)
    history = history_file(paths, record["stamp"], ACCEPTED)
    record["store"]["history_file"] = relative_posix(history, paths.root)
    record["transaction"] = _transaction(record, store_ratings, merged, version, promote,
                                         creates=[record["store"]["history_file"]])
    _write_record(paths, record)  # status: pending
    write_history(history, fresh)  # before the store: a rebuild never lacks what it holds
    result = append_ratings(fresh, paths)
    record["store"].update(result.summary())
    if promote is not None:
        _move_pointer(paths, record, promote)
    record["champion_after"] = registry.champion_version(paths)
    record["status"] = "done"
    return _finish(paths, record, log)


def _finish(paths: ProjectPaths, record: dict, log: Callable[[str], None]) -> dict:
    path = _write_record(paths, record)
    record["record_file"] = relative_posix(path, paths.root)
    log(json.dumps(record, indent=2, default=str))
    log(f"decision: {record['decision']} — champion is {record['champion_after']} "
        f"(record: {record['record_file']})")
    return record


# --------------------------------------------------------------------------- hold back


#: The newest share of the store's ratings a default hold-back moves out (the last 85
#: days on the default data, whose ratings span 22 years; a few days of a short export).
HOLD_BACK_SHARE = 0.02


def hold_back(paths: ProjectPaths | None = None, quarter: str | None = None,
              days: float | None = None, retrain_champion: bool = True,
              trainer: Trainer | None = None, log: Callable[[str], None] = print) -> dict:
    """Set up the "newest ratings arrive later" scenario on an existing store.

    Moves the most recent ratings out of the store into
    ``data/raw/new_ratings_<from>_<to>.csv`` (raw layout ``userId,rating,timestamp,movieId``)
    — every rating from the start of ``quarter`` (e.g. ``"2016Q3"``) on, or the last
    ``days`` days, or by default the newest :data:`HOLD_BACK_SHARE` of the ratings (cut at
    that quantile of rating times, so any calendar has a batch to replay) — and, with
    ``retrain_champion``, registers a champion trained
    with the champion's parameters on the reduced store, so that no model has seen the
    held-back ratings. ``recsys-retrain --new-ratings <file>`` then replays their arrival.
    One transaction (see the invariant): the champion is trained and registered first,
    then a pending record, the file, the store and the pointer change.
    """
    paths = paths or project_paths()
    with store_lock(paths):
        recover(paths, log)
        ratings, _ = load_store(paths)
        ts = pd.to_datetime(ratings["timestamp"])
        if quarter is not None:
            cutoff = pd.Period(_quarter(quarter), freq="Q").start_time
        elif days is not None:
            cutoff = ts.max() - pd.Timedelta(days=days)
        else:
            cutoff = ts.quantile(1 - HOLD_BACK_SHARE, interpolation="higher")
        held = (ts >= cutoff).to_numpy()
        back, remaining = ratings[held], ratings[~held].reset_index(drop=True)
        if back.empty or remaining.empty:
            raise DataError(f"holding back ratings from {cutoff} on would leave "
                            f"{'nothing to hold back' if back.empty else 'an empty store'}")
        start, end = ts[held].min(), ts.max()
        out = paths.raw / f"new_ratings_{start:%Y%m%d}_{end:%Y%m%d}.csv"
        raw = pd.DataFrame({
            "userId": back["user_id"].astype("int64").to_numpy(),
            "rating": back["score"].astype("float64").map(lambda s: f"{s:g}").to_numpy(),
            "timestamp": pd.to_datetime(back["timestamp"]).astype("datetime64[s]")
            .astype("int64").to_numpy(),
            "movieId": back["item_id"].astype(str).to_numpy(),
        }).sort_values(["timestamp", "userId", "movieId"], kind="stable")
        stamp = _stamp()
        file = relative_posix(out, paths.root)
        record: dict[str, Any] = {
            "stamp": stamp, "decision": "held back", "status": "pending",
            "champion_before": registry.champion_version(paths),
            "held_back": {"file": file, "ratings": len(back), "from": str(start),
                          "to": str(end), "remaining": len(remaining)},
        }
        version = None
        if retrain_champion:
            params = _check_params(registry.champion_manifest(paths), hint=(
                "roll back to a recommender version first (`recsys-retrain --rollback "
                "VERSION`, `--list` names them), then hold back"))
            model_df = derive_model(remaining)
            model = (trainer or default_trainer)(model_df, _titles(paths), params)
            version = registry.register_model(
                model, params=params, metrics={}, data_fingerprint=data_fingerprint(model_df),
                paths=paths, promote=False,
                notes=f"champion for the hold-back scenario: trained without the ratings "
                      f"from {start} on ({file}); not evaluated",
                extra={"decision_record": _record_name(paths, stamp)})
        # The history remembers the hold-back, so a rebuild (01) leaves these ratings out
        # too, until a retrain accepts them again.
        held_file = history_file(paths, stamp, HELD_BACK)
        record["held_back"]["history_file"] = relative_posix(held_file, paths.root)
        record["transaction"] = _transaction(record, ratings, remaining, version, version,
                                             creates=[file, record["held_back"]["history_file"]])
        _write_record(paths, record)  # status: pending
        atomic_write(out, lambda tmp: raw.to_csv(tmp, index=False))
        write_history(held_file, back)
        write_store(remaining, paths)
        if version is not None:
            _move_pointer(paths, record, version)
        record["champion_after"] = registry.champion_version(paths)
        record["status"] = "done"
        _write_record(paths, record)
    summary: dict[str, Any] = {"file": file, "held_back": len(back), "from": str(start),
                               "to": str(end), "remaining": len(remaining)}
    log(f"held back {len(back):,} ratings ({start} .. {end}) -> {file}; "
        f"{len(remaining):,} remain in the store")
    if version is not None:
        summary["champion"] = record["champion_after"]
        log(f"registered and promoted {version}, trained on the reduced store")
    return summary


# --------------------------------------------------------------------------- CLI

_QUARTER = re.compile(r"(\d{4})[Qq]([1-4])")


def _quarter(text: str) -> str:
    """``2016Q3`` (``2016q3`` normalised); ``DataError`` for anything else."""
    match = _QUARTER.fullmatch(text.strip())
    if match is None:
        raise DataError(f"{excerpt(text)} is not a quarter: expected YYYYQ1..YYYYQ4, e.g. 2016Q3")
    return f"{match[1]}Q{match[2]}"


# argparse converts a string const too: "" (a bare --hold-back) stays the default share.
_QUARTER_ARG = arg_type(lambda text: text and _quarter(text), lambda _: True,
                        "a quarter such as 2016Q3 (YYYYQ1..YYYYQ4)")
_FRACTION = arg_type(float, lambda v: 0 < v <= 1, "a fraction in (0, 1], e.g. 0.5")
_DAYS = arg_type(float, lambda v: 0 < v < math.inf, "a number of days > 0, e.g. 30")
TOLERANCE_ARG = arg_type(float, lambda v: 0 <= v < math.inf, "a number >= 0, e.g. 0.005")
COUNT_ARG = arg_type(int, lambda v: v >= 1, "a whole number >= 1, e.g. 50")
_THRESHOLD = arg_type(float, lambda v: v >= 0, "a number >= 0 (inf: the signal never fires)")
_ANY_THRESHOLD = arg_type(float, lambda v: not math.isnan(v),
                          "a number, e.g. 0.05 (inf: the signal never fires)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys-retrain",
        description="Validate new ratings and append them to the store (and the history); "
                    "when the trigger policy says so (or --force), train a challenger with "
                    "the champion's parameters and promote it only if it is not worse on the "
                    "most recent holdout. Prints and saves a JSON decision record.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--new-ratings", type=Path, metavar="PATH",
                        help="CSV with header userId,rating,timestamp,movieId")
    action.add_argument("--list", action="store_true", help="list the registered versions")
    action.add_argument("--rollback", nargs="?", const="", metavar="VERSION",
                        help="point the champion at VERSION (v0001, ...; default: the champion "
                             "before the current one, one further back each time)")
    action.add_argument("--hold-back", nargs="?", const="", metavar="QUARTER",
                        type=_QUARTER_ARG,
                        help="move the latest ratings (from QUARTER, e.g. 2016Q3, or the "
                             "newest 2%%: about three months on the default data) out of the "
                             "store into data/raw/new_ratings_*.csv and register a champion "
                             "trained without them")
    parser.add_argument("--tolerance", type=TOLERANCE_ARG, default=DEFAULT_TOLERANCE,
                        help="allowed RMSE increase (default %(default)s)")
    parser.add_argument("--ndcg-tolerance", type=TOLERANCE_ARG, default=None,
                        help="allowed NDCG@10 decrease (default: --tolerance)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--holdout-fraction", type=_FRACTION, default=0.5,
                       help="newest share of the added ratings used to judge (default 0.5)")
    split.add_argument("--holdout-days", type=_DAYS, default=None,
                       help="judge on the added ratings within this many days of the newest")
    parser.add_argument("--min-holdout", type=COUNT_ARG, default=50,
                        help="fewest holdout ratings to judge on (default %(default)s)")
    policy = parser.add_argument_group(
        "trigger policy", "retrain only when a signal of the new ratings crosses its threshold "
        "(default: the thresholds 05_monitoring saved in outputs/reports/monitoring.json, else "
        "PSI 0.1, error increase 0.05, unseen users 0.3); the ratings are appended either way")
    policy.add_argument("--psi-threshold", type=_THRESHOLD, default=None,
                        help="score PSI of the new ratings vs the store")
    policy.add_argument("--error-increase", type=_ANY_THRESHOLD, default=None,
                        help="champion's RMSE on them / on its first served batch - 1")
    policy.add_argument("--new-user-threshold", type=_THRESHOLD, default=None,
                        help="share of them from users the store has never seen")
    policy.add_argument("--force", action="store_true",
                        help="train and judge a challenger whatever the policy says")
    parser.add_argument("--retune", action="store_true",
                        help="re-tune the rating components (small grids, CV) and choose the "
                             "ranking again (03's grid and rule), on the training data only")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``recsys-retrain``; ``DataError`` → ``error: ...`` on stderr, exit 2."""
    args = build_parser().parse_args(argv)
    paths = project_paths()

    def body() -> None:
        if args.list:
            table = registry.versions_table(paths)
            table["notes"] = table["notes"].astype(str).str.slice(0, 60)
            print(table.to_string(index=False) if len(table) else "no registered model")
            problem = registry.pointer_problem(paths)  # listed anyway: the listing helps fix it
            if problem:
                print(f"warning: {problem}", file=sys.stderr)
        elif args.rollback is not None:
            with store_lock(paths):
                recover(paths)
                version = registry.rollback(args.rollback or None, paths)
            print(f"champion is now {version}")
        elif args.hold_back is not None:
            hold_back(paths, quarter=args.hold_back or None)
        else:
            run_retrain(args.new_ratings, paths=paths, tolerance=args.tolerance,
                        ndcg_tolerance=args.ndcg_tolerance,
                        holdout_fraction=args.holdout_fraction, holdout_days=args.holdout_days,
                        min_holdout=args.min_holdout, retune=args.retune,
                        thresholds={"psi_threshold": args.psi_threshold,
                                    "error_increase": args.error_increase,
                                    "new_user_threshold": args.new_user_threshold},
                        force=args.force, argv=sys.argv[1:] if argv is None else list(argv))

    return run_command(body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
