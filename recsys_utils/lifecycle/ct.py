"""Continuous training as one local command: pull, retrain, push (``recsys-ct``, ``make ct``).

``recsys-ct run --new-ratings PATH`` (``make ct NEW=PATH``) does what the weekly
workflow (``.github/workflows/retrain.yml``) does, so the workflow's logic is testable here:

1. **pull** the ratings store, its history and the registry named by the committed pointer
   files (``data/processed.dvc``, ``data/history.dvc``, ``outputs/models.dvc``) from the DVC
   remote — week N+1
   starts from week N's store and champion, not from a rebuild. With no pointer file
   yet (the first run), the store and champion of the local ``make pipeline`` are the
   start (bootstrap). Local work nobody pushed (a ``make retrain``) is never pulled over:
   the run stops and says to ``make push`` it or discard it;
2. **retrain** with ``recsys_utils.lifecycle.retrain.run_retrain`` (validate and append
   the new ratings, train the challenger with the champion's parameters, judge both on
   the newest ratings, promote if not worse): the one implementation of those steps;
3. **retention** (:func:`recsys_utils.lifecycle.versioning.prune_versions`): old
   non-champion versions that the remote already holds leave the workspace;
4. **push** the store and the registry, then write ``outputs/reports/ct/report.md``
   (decision, champion vs challenger metrics, drift of the new ratings, a figure) —
   the comment CML posts on the pull request that updates the pointer files.

Why push on every change and not only on promotion: a kept champion still leaves new
ratings in the store (and the rival version in the registry, for audit); not pushing
them would make next week start from a store without this week's ratings.

Running it twice with the same file is a no-op the second time: the store already
holds every rating (the retrain decision is ``skipped``), nothing is trained, the
pointer files and the remote do not change.

Other subcommands: ``pull``, ``push``, ``status``, ``remote [URL]``, ``prune``,
``restore VERSION`` (``make pull`` / ``make push``).

Only the commands that create versions or set the remote (``run``, ``push``, ``remote URL``)
initialise DVC in a git clone without ``.dvc/`` (and say so); ``status``, ``remote``,
``pull``, ``prune`` and ``restore`` need an existing DVC project and refuse outside one.
``status`` and ``remote`` (without URL) only read: no configuration (not even the clone's
remote setting), no ``.dvcignore`` line, no remote folder (DVC's own scratch ``.dvc/tmp``
aside).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_utils.atomic import atomic_write_text
from recsys_utils.data.tables import RATINGS_FILE, TITLES_FILE
from recsys_utils.errors import DataError, bounded, run_command
from recsys_utils.lifecycle import retrain, versioning
from recsys_utils.paths import ProjectPaths, project_paths, relative_posix

__all__ = ["CTResult", "run_ct", "drift_of_batch", "write_report", "main"]


@dataclass
class CTResult:
    """What one continuous-training run did."""

    record: dict  # the retrain decision record
    before: dict[str, str | None]  # pointer hashes pulled (None: not tracked yet)
    after: dict[str, str | None]  # pointer hashes once done
    pushed: bool
    pruned: list[str] = field(default_factory=list)
    drift: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None

    @property
    def changed(self) -> list[str]:
        """Pointer files whose content changed: what the pull request commits."""
        return [p for p, h in self.after.items() if h != self.before.get(p)]

    @property
    def no_op(self) -> bool:
        return not self.pushed and not self.changed


# --------------------------------------------------------------------------- drift


def drift_of_batch(new_ratings: str | Path, paths: ProjectPaths) -> dict[str, Any]:
    """How the new ratings differ from the store: score PSI, shares of unseen users/titles.

    Read with the cleaning step's reader (the rows retraining would keep); the
    reference is the store as pulled. Empty dict when the file has no valid row.
    """
    from recsys_utils.data.ratings import read_ratings_file
    from recsys_utils.data.store import load_store
    from recsys_utils.lifecycle.monitoring import psi_band, score_psi

    ratings, _ = load_store(paths)
    stored = {item: item for item in ratings["item_id"].astype(str).unique()}
    got = read_ratings_file(new_ratings, stored | _catalog_items(paths))
    batch = got.ratings
    if batch.empty or ratings.empty:
        return {}
    value = score_psi(ratings["score"], batch["score"])
    return {
        "n_new": len(batch),
        "score_psi": round(value, 4),
        "psi_band": psi_band(value),
        "share_new_users": round(float((~batch["user_id"].isin(ratings["user_id"])).mean()), 4),
        "share_new_titles": round(float((~batch["item_id"].isin(ratings["item_id"])).mean()), 4),
        "mean_score_store": round(float(ratings["score"].mean()), 3),
        "mean_score_new": round(float(batch["score"].mean()), 3),
        "_scores": (ratings["score"].to_numpy(), batch["score"].to_numpy()),
    }


def _catalog_items(paths: ProjectPaths) -> dict[str, str]:
    """The catalog's ``movieId`` → ``item_id`` (``data.linking.rating_ids``), if cleaned."""
    from recsys_utils.data.linking import rating_ids

    titles = paths.processed / TITLES_FILE
    if not titles.is_file():
        return {}
    return rating_ids(pd.read_parquet(titles, columns=["id", "item_id"]))


# --------------------------------------------------------------------------- report


def _metrics_table(record: dict) -> str:
    champion = (record.get("champion") or {}).get("metrics") or {}
    challenger = (record.get("challenger") or {}).get("metrics") or {}
    keys = [k for k in ("rmse", "mae", next((k for k in champion if k.startswith("ndcg@")), None),
                        "n_ratings", "n_users") if k and (k in champion or k in challenger)]
    if not keys:
        return ""

    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    rows = ["| metric | champion | challenger |", "|---|---|---|"]
    rows += [f"| {k} | {cell(champion.get(k, '–'))} | {cell(challenger.get(k, '–'))} |"
             for k in keys]
    return "\n".join(rows) + "\n"


def _score_figure(drift: dict, folder: Path) -> Path | None:
    if "_scores" not in drift:
        return None
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    reference, new = drift["_scores"]
    bins = np.arange(0.25, 5.5, 0.5)
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    shares = [np.full(len(reference), 1 / len(reference)), np.full(len(new), 1 / len(new))]
    ax.hist([reference, new], bins=bins, weights=shares, label=["store", "new ratings"])
    ax.set(title=f"Score distribution (PSI {drift['score_psi']:.3f}, {drift['psi_band']})",
           xlabel="score", ylabel="share of ratings")
    ax.legend()
    path = folder / "scores.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def write_report(result: CTResult, paths: ProjectPaths) -> Path:
    """``outputs/reports/ct/report.md`` (+ ``scores.png``): the decision record for a human.

    The CT workflow posts it with ``cml comment create``; the full JSON record is linked.
    """
    folder = paths.reports / "ct"
    folder.mkdir(parents=True, exist_ok=True)
    record = result.record
    lines = [f"## Continuous training: {record.get('decision')}", "",
             f"Champion before: `{record.get('champion_before')}` → after: "
             f"`{record.get('champion_after')}`"
             + (f"; challenger `{record['challenger']['version']}`"
                if record.get("challenger") else ""), ""]
    new = record.get("new_ratings") or {}
    store = record.get("store") or {}
    lines += [f"New ratings `{new.get('path')}`: read {new.get('read')}, kept {new.get('kept')}, "
              f"rejected {new.get('rejected')}; {store.get('new', 0)} new to the store "
              f"({store.get('already_present', 0)} already there).", ""]
    policy = record.get("policy") or {}
    if policy:
        lines += [f"Trigger policy: {policy.get('decision')}"
                  + (" (forced)" if policy.get("forced") else "")
                  + f"; thresholds from {policy.get('thresholds_from')}.", ""]
    for reason in record.get("reasons") or []:
        lines.append(f"- {reason}")
    if record.get("rule"):
        lines += ["", f"Rule: {record['rule']}."]
    table = _metrics_table(record)
    if table:
        lines += ["", "Both judged on the same holdout "
                  f"({(record.get('holdout') or {}).get('rule', '')}):", "", table]
    drift = {k: v for k, v in result.drift.items() if not k.startswith("_")}
    if drift:
        lines += ["", "### Drift of the new ratings against the store", "",
                  "| measure | value |", "|---|---|"]
        lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in drift.items()]
    figure = _score_figure(result.drift, folder)
    if figure is not None:
        lines += ["", f"![score distribution]({figure.name})"]
    lines += ["", "### Data and model versions (DVC)", ""]
    lines += [f"- `{p}`: {result.before.get(p) or 'not tracked'} → {h or 'not tracked'}"
              for p, h in result.after.items()]
    if result.pruned:
        lines.append(f"- retention: pruned {', '.join(result.pruned)} from the workspace "
                     "(kept in the remote)")
    lines.append(f"- decision record: `{record.get('record_file')}`")
    return atomic_write_text(folder / "report.md", "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- the run


def run_ct(new_ratings: str | Path, *, paths: ProjectPaths | None = None,
           remote: str | None = None, keep: int = versioning.DEFAULT_KEEP,
           log: Callable[[str], None] = print, **retrain_options: Any) -> CTResult:
    """Pull, retrain, prune, push; returns what happened (see the module doc).

    ``retrain_options`` go to ``retrain.run_retrain`` (``tolerance``, ``trainer``, ...).
    """
    paths = paths or project_paths()
    new_path = Path(new_ratings)
    if not new_path.is_file():
        raise DataError(f"no new-ratings file {new_path}; expected a CSV with header "
                        "userId,rating,timestamp,movieId")
    before = versioning.pointer_hashes(paths)
    if any(before.values()):
        versioning.pull(paths, remote, log)
    else:
        versioning.ensure_repo(paths, remote, log)
        log("bootstrap: no pointer file yet, starting from the local store and champion "
            "(`make pipeline`); they are pushed at the end")
    stored = (paths.processed / RATINGS_FILE).is_file()
    drift = drift_of_batch(new_path, paths) if stored else {}
    record = retrain.run_retrain(new_path, paths=paths, log=log, **retrain_options)
    if record.get("decision") == "skipped" and all(before.values()):
        log("ct: nothing new, nothing trained, nothing pushed (no-op)")
        # No drift section: the store already holds these ratings, so it would compare
        # the batch with itself.
        result = CTResult(record, before, dict(before), pushed=False)
        result.report = write_report(result, paths)
        return result
    models_pointer = versioning.pointer_file(paths.models).relative_to(paths.root).as_posix()
    pruned = versioning.prune_versions(paths, keep, pushed_hash=before.get(models_pointer),
                                       log=log).pruned
    after = versioning.push(paths, remote, log)
    result = CTResult(record, before, after, pushed=True, pruned=pruned, drift=drift)
    result.report = write_report(result, paths)
    log(f"ct: {record.get('decision')}; pointer files changed: "
        f"{', '.join(result.changed) or 'none'} (commit them); report: "
        f"{relative_posix(result.report, paths.root)}")
    return result


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys-ct",
        description="Continuous training with DVC: pull the store and the champion, retrain "
                    "with new ratings, push. Remote: $RECSYS_DVC_REMOTE, else the DVC config, "
                    "else ~/.cache/recsys-dvc-remote.")
    # Not required=True: argparse would then report `recsys-ct --bogus` as a missing
    # command; parse_args checks both, the unknown option first.
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="pull → validate and append → challenger → decide → push")
    run.add_argument("--new-ratings", type=Path, required=True, metavar="PATH",
                     help="CSV with header userId,rating,timestamp,movieId")
    run.add_argument("--tolerance", type=retrain.TOLERANCE_ARG, default=retrain.DEFAULT_TOLERANCE,
                     help="allowed RMSE increase (default %(default)s)")
    run.add_argument("--min-holdout", type=retrain.COUNT_ARG, default=50,
                     help="fewest holdout ratings to judge on (default %(default)s)")
    run.add_argument("--keep", type=_KEEP, default=versioning.DEFAULT_KEEP,
                     help="non-champion versions kept in the workspace (default %(default)s)")
    run.add_argument("--retune", action="store_true",
                     help="choose the challenger's parameters again on its training data "
                          "(recsys-retrain --retune)")
    pull = sub.add_parser("pull", help="fetch the store and the registry the pointer files name")
    pull.add_argument("--discard", action="store_true",
                      help="replace local changes to the tracked folders (default: refuse)")
    sub.add_parser("push", help="track the store and the registry and upload them")
    sub.add_parser("status", help="what differs between workspace, pointers and remote")
    remote = sub.add_parser("remote", help="show the remote, or set the team's (commit .dvc/config)")
    remote.add_argument("url", nargs="?", help="gs://bucket/path, s3://bucket/path or a folder")
    prune = sub.add_parser("prune", help="retention: drop old non-champion versions (kept remotely)")
    prune.add_argument("--keep", type=_KEEP, default=versioning.DEFAULT_KEEP,
                       help="non-champion versions kept in the workspace (default %(default)s)")
    restore = sub.add_parser("restore", help="fetch a pruned registry version back from the remote")
    restore.add_argument("version")
    for command in sub.choices.values():  # so a usage error shows the subcommand's usage line
        command.set_defaults(command_parser=command)
    return parser


_KEEP = bounded(int, 0)  # 0: keep only the protected versions


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, or a usage error (exit 2) giving the accurate reason: an unknown
    option is named (``recsys-ct --bogus`` used to report a missing command), with the
    subcommand's usage line when there is a subcommand."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        getattr(args, "command_parser", parser).error(
            f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.error("the following arguments are required: command")
    return args


#: Subcommands that may turn a git clone without ``.dvc/`` into a DVC project (they say
#: so): they create versions or set the remote. The others need an existing DVC project.
_MAY_INIT = ("run", "push", "remote URL")


def main(argv: Sequence[str] | None = None) -> int:
    """``recsys-ct``; ``DataError`` → ``error: ...`` on stderr, exit 2."""
    args = parse_args(argv)
    paths = project_paths()

    def body() -> int:
        command = "remote URL" if args.command == "remote" and args.url else args.command
        if not paths.root.is_dir():
            raise DataError(f"no project folder {paths.root}: set $RECSYS_ROOT to the "
                            "project's clone")
        if command not in _MAY_INIT:
            versioning.require_project(paths)
        was_dvc = (paths.root / ".dvc").is_dir()
        if command in ("run", "pull", "push", "restore"):
            versioning.check_remote(*versioning.remote_in_use(paths))  # before any DVC call
        if command == "run":
            run_ct(args.new_ratings, paths=paths, tolerance=args.tolerance, keep=args.keep,
                   min_holdout=args.min_holdout, retune=args.retune)
        elif command == "pull":
            versioning.pull(paths, discard=args.discard)
        elif command == "push":
            hashes = versioning.push(paths)
            ignores = {versioning.pointer_file(f).parent / ".gitignore"
                       for f in versioning.tracked_paths(paths)}
            print("commit the pointer files: git add " + " ".join(
                [p for p, h in hashes.items() if h] + [".dvc/config", ".dvcignore"]
                + sorted(relative_posix(f, paths.root) for f in ignores if f.is_file())))
        elif command == "status":
            print(json.dumps(versioning.status(paths), indent=2))
        elif command == "remote":
            print(versioning.absolute_url(versioning.remote_in_use(paths)[0]))
        elif command == "remote URL":
            if os.environ.get(versioning.ENV_REMOTE):
                versioning.check_remote(os.environ[versioning.ENV_REMOTE],
                                        f"${versioning.ENV_REMOTE}", plugin_needed=False)
            note = versioning.check_remote(args.url, "the command line", plugin_needed=False)
            url = versioning.set_remote(args.url, paths)
            if not was_dvc:
                print(f"initialised DVC in {paths.root} (commit .dvc/ and .dvcignore)",
                      file=sys.stderr)
            if note:
                print(f"note: {note}", file=sys.stderr)
            print(url)
        elif command == "prune":
            done = versioning.prune_versions(paths, args.keep)
            if not done.pruned:
                print(f"nothing pruned: {done.reason}")
        else:
            versioning.restore_version(args.version, paths)
        return 0

    return run_command(body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
