"""``run(config)``: prepare -> train -> optimize -> evaluate -> deploy, nothing else.

Each stage reads what the previous one wrote into the run directory, so any
tail of the pipeline can run on its own (``stages=["evaluate"]``).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launchml import console
from launchml.config import RunConfig
from launchml.data import SOURCES, Prepared, load_prepared
from launchml.deploy.package import ONNX, load_package, update_package
from launchml.deploy.predictor import Predictor
from launchml.errors import ConfigError, LaunchmlError, RunError
from launchml.evaluate import evaluate
from launchml.optimize import optimize
from launchml.privacy.config import private_data
from launchml.runs import (
    RunDir,
    RunLock,
    atomic_path,
    read_json,
    remove_orphan_temp_files,
    write_json,
)
from launchml.train import TrainResult

STAGES = ("prepare", "train", "optimize", "evaluate", "deploy")


@dataclass
class Run:
    """What ``launchml.run`` returns: the config, the run folder and each stage's result."""

    config: RunConfig
    dir: RunDir
    prepared: Prepared | None = None
    train: TrainResult | None = None
    variants: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage

    @property
    def model_dir(self) -> Path:
        return self.dir.model

    @functools.cached_property
    def predictor(self) -> Predictor:
        """The run's model package, loaded once."""
        return Predictor.load(self.dir.model)

    def leaderboard(self) -> Any:
        """The families ranked on validation (``leaderboard.json``) as a DataFrame."""
        import pandas as pd

        path = self.dir.root / "leaderboard.json"
        return pd.DataFrame(read_json(path) if path.exists() else [])


def _check_stages(stages: list[str] | None) -> list[str]:
    if stages is None:
        return list(STAGES)
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise ConfigError(f"unknown stage(s) {bad}; the stages are {', '.join(STAGES)}")
    return [s for s in STAGES if s in stages]


def _start(cfg: RunConfig, stages: list[str], resume: bool, overwrite: bool) -> RunDir:
    run = cfg.run_dir
    if overwrite and run.root.exists():
        shutil.rmtree(run.root)
    has_ckpt = (run.checkpoints / "last.ckpt").exists()
    has_model = (run.model / "package.json").exists()
    if "train" in stages and not resume and (has_ckpt or has_model):
        what = "checkpoints" if has_ckpt else "a trained model"
        raise RunError(
            f"run '{run.root}' already has {what}. Fix: --overwrite (overwrite=True in "
            "Python) to start again, "
            + ("--resume (resume=True) to continue it, " if has_ckpt else "")
            + "or choose another name.")
    if resume and "train" in stages and not has_ckpt:
        raise RunError(f"--resume: '{run.checkpoints / 'last.ckpt'}' does not exist; nothing "
                       "to resume. Fix: run without --resume (resume=False) to start training.")
    run.mkdir()
    if not (resume and has_ckpt):
        cfg.save(run.config)
    return run


def run(
    config: RunConfig | dict[str, Any] | str | Path,
    *,
    stages: list[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int | None = None,
) -> Run:
    """Run the pipeline (or the listed stages) and return the ``Run``.

    ``verbose``: 0 prints no progress (warnings still), 1 prints it; None: as the
    LAUNCHML_QUIET environment variable says. Every message also goes to the
    ``launchml`` logger.
    """
    if verbose is not None:
        with console.verbosity(verbose):
            return run(config, stages=stages, resume=resume, overwrite=overwrite)
    cfg = RunConfig.load(config)
    todo = _check_stages(stages)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite (resume=True, overwrite=True) exclude each "
                          "other: resume continues the "
                          "run's checkpoints, overwrite deletes them. Fix: choose one.")
    # one run writes a run folder at a time: a second one of the same name refuses
    with _os_errors(cfg.run_dir.root), RunLock(cfg.run_dir.root):
        return _locked(cfg, todo, resume, overwrite)


def _locked(cfg: RunConfig, todo: list[str], resume: bool, overwrite: bool) -> Run:
    _check_against_saved(cfg, todo, resume and not overwrite)  # before anything is written
    new = not cfg.run_dir.root.exists() or overwrite
    rd = _start(cfg, todo, resume, overwrite)
    orphans = remove_orphan_temp_files(rd.root)  # a killed run's half-written files
    if orphans:
        console.info(f"removed {len(orphans)} temporary files a stopped run left, e.g. "
                     f"{orphans[0].name}")
    _report_interrupted(rd, todo)
    try:
        return _stages(cfg, rd, todo, resume)
    except LaunchmlError:
        # a run refused for its data or config leaves no stray folder; one with a model
        # or checkpoints is kept (--resume continues it)
        kept = (rd.model / "package.json").exists() or rd.checkpoints.exists() or (
            rd.root / "families").exists()
        if new and not kept:
            shutil.rmtree(rd.root, ignore_errors=True)
        raise


@contextmanager
def _os_errors(root: Path) -> Iterator[None]:
    """A file-system failure is one line saying what happened and the fix."""
    try:
        yield
    except OSError as e:
        if isinstance(e, LaunchmlError):
            raise
        raise RunError(os_error_message(e, root)) from None


def os_error_message(e: OSError, root: Path) -> str:
    name = str(e.filename or root)
    where = f"'{name if len(name) <= 300 else name[:300] + '...'}'"
    code = e.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return (f"the disk is full (writing {where}). Fix: free space or set output_dir on "
                "a larger disk, then run the same command again (add --resume if training "
                "had started: it continues from the last checkpoint).")
    if code == errno.EROFS:
        return (f"{where} is on a read-only file system. Fix: set output_dir to a folder "
                "you can write.")
    if code in (errno.EACCES, errno.EPERM):
        return (f"permission denied on {where}. Fix: set output_dir to a folder you can "
                "write, or change its permissions.")
    if code == errno.ELOOP:
        return f"{where} is a symbolic link loop. Fix: remove or repair the link."
    return f"{e.strerror or type(e).__name__} ({where}). Fix: check the path and try again."


_STAGES_FILE = "stages.json"  # per stage: when it started and finished (a kill leaves one open)


def _stage_record(rd: RunDir) -> dict[str, Any]:
    path = rd.root / _STAGES_FILE
    try:
        record = read_json(path) if path.exists() else {}
    except ValueError:
        record = {}
    return record if isinstance(record, dict) else {}


def _report_interrupted(rd: RunDir, todo: list[str]) -> None:
    """Say which stage an earlier, killed run left unfinished (and whether this run redoes it)."""
    open_ = [s for s, r in _stage_record(rd).items() if isinstance(r, dict)
             and r.get("started") and not r.get("finished") and not r.get("failed")]
    for stage in open_:
        redo = "this run does it again" if stage in todo else \
            f"run it again (--stages {stage})" + (": the package may lack its ONNX file and "
                                                   "metrics" if stage == "deploy" else "")
        console.warn(f"stage {stage} of an earlier run of '{rd.root}' was interrupted; {redo}.")


def _check_against_saved(cfg: RunConfig, todo: list[str], resume: bool) -> None:
    """Refuse, before writing anything, a --resume whose settings differ from its
    checkpoint's, and later stages run against data the config no longer describes."""
    import yaml

    from launchml.train import resume_key

    saved_path = cfg.run_dir.config
    if not saved_path.exists() or "prepare" in todo and not resume:
        return
    try:  # as a dict: paths saved relative (before launchml saved them absolute) are
        # from the working folder, as they were then
        saved = RunConfig.load(yaml.safe_load(saved_path.read_text(encoding="utf-8")))
    except (ConfigError, yaml.YAMLError, AttributeError):
        return  # an unreadable old config: the checkpoint's own key check still applies
    if resume:
        a = resume_key(saved.model_dump(mode="json"), "")
        b = resume_key(cfg.model_dump(mode="json"), "")
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if diff:
            shown = "; ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff)
            raise RunError(f"--resume: run '{cfg.run_dir.root}' was started with other "
                           f"settings: {shown}. Nothing was changed. Fix: restore them, or "
                           "--overwrite (overwrite=True) to start again.")
    elif saved.data != cfg.data:
        a, b = saved.data.model_dump(mode="json"), cfg.data.model_dump(mode="json")
        diff = "; ".join(f"data.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(
            set(a) | set(b)) if a.get(k) != b.get(k))
        raise RunError(f"run '{cfg.run_dir.root}' was prepared with other data settings "
                       f"({diff}); stages {', '.join(todo)} would use the old data. Fix: add "
                       "the prepare stage (--stages prepare,...; stages=[\"prepare\", ...] in "
                       "Python), or score new labelled data with `launchml evaluate "
                       "<package> --data <folder or file>`.")


def _stages(cfg: RunConfig, rd: RunDir, todo: list[str], resume: bool) -> Run:
    result = Run(config=cfg, dir=rd)
    prepare = SOURCES[cfg.data.kind]
    timer = _StageTimer(result)
    if "prepare" in todo:
        with timer("prepare"):
            # a private run: vocabularies keep what privacy.min_token_rows rows hold
            result.prepared = prepare(private_data(cfg), rd, cfg.seed)
    if {"train", "optimize", "evaluate"} & set(todo) and result.prepared is None:
        result.prepared = load_prepared(rd)
    prepared = result.prepared
    if "train" in todo:
        with timer("train"):
            # model.time_limit bounds prepare and train together when both run here
            result.train = train_stage(cfg, rd, prepared, resume=resume,
                                       spent=result.seconds.get("prepare", 0.0))
        # variants of an earlier model would be served or reported with this one (deploy
        # copies variants/onnx/model.onnx and summary.json): optimize remakes them
        shutil.rmtree(rd.variants, ignore_errors=True)
    if "optimize" in todo and cfg.optimize.variants:
        with timer("optimize"):
            # every family through one path: variants that need a network say so when the
            # package has none (LightGBM and linear serve through their own predictors)
            result.variants = optimize(cfg.optimize, load_package(rd.model), prepared, rd,
                                       run_config=cfg)
            record_parity(rd, result.variants.get("onnx"), cfg.optimize.parity_tolerance)
    if "evaluate" in todo:
        with timer("evaluate"):
            predictor = Predictor(load_package(rd.model))
            made_from = predictor.package.meta["provenance"].get("data_fingerprint")
            if made_from and made_from != prepared.manifest.get("fingerprint"):
                raise RunError(f"evaluate: the prepared data in '{rd.prepared}' is not the "
                               f"data the model in '{rd.model}' was trained on (prepared "
                               "again with other settings since). Fix: train again (--stages "
                               "train,optimize,evaluate,deploy; in Python stages=[...]) or "
                               "--overwrite (overwrite=True).")
            result.metrics = evaluate(cfg.evaluate, predictor, prepared, rd)
    if "deploy" in todo:
        with timer("deploy"):
            deploy_stage(rd)
    console.info("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items()))
    return result


class _StageTimer:
    """Records each stage's wall time in ``Run.seconds``."""

    def __init__(self, result: Run) -> None:
        self.result = result

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        rd = self.result.dir
        record = _stage_record(rd)
        record[stage] = {"started": time.time(), "finished": None}
        write_json(rd.root / _STAGES_FILE, record)  # a kill leaves it open: reported next time
        t0 = time.perf_counter()
        try:
            yield
        except BaseException as e:
            if isinstance(e, Exception) and rd.root.exists():  # failed, not killed
                record[stage]["failed"] = type(e).__name__
                with suppress(OSError):
                    write_json(rd.root / _STAGES_FILE, record)
            raise
        self.result.seconds[stage] = round(time.perf_counter() - t0, 3)
        record[stage]["finished"] = time.time()
        write_json(rd.root / _STAGES_FILE, record)


def train_stage(cfg: RunConfig, rd: RunDir, prepared: Prepared, *, resume: bool,
                spent: float = 0.0) -> TrainResult:
    """The same for every kind of input: the families that fit, ranked, ensembled, packaged
    (within what ``spent`` seconds of prepare left of ``model.time_limit``)."""
    from launchml.train.select import train_families

    return train_families(cfg, rd, prepared, resume=resume, spent=spent)


PARITY = ONNX + ".parity.json"  # beside variants/onnx/model.onnx: its checked sha256


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_parity(rd: RunDir, row: dict[str, Any] | None, tolerance: float) -> None:
    """After optimize: record beside variants/onnx/model.onnx that it passed the parity
    check against PyTorch (its sha256 and max |diff|). Deploy ships only such a file."""
    onnx = rd.variants / "onnx" / ONNX
    diff = (row or {}).get("max_abs_diff")
    if not onnx.exists() or row is None or "error" in row:
        return
    if diff is None or not diff <= tolerance:
        console.warn(f"optimize: {onnx} differs from the PyTorch model by {diff} (more than "
                     f"optimize.parity_tolerance {tolerance}); it is not deployed.")
        return
    write_json(onnx.with_name(PARITY), {"sha256": _sha256(onnx), "max_abs_diff": diff,
                                        "tolerance": tolerance})


def checked_onnx(rd: RunDir) -> Path | None:
    """variants/onnx/model.onnx if its parity record says it is this very file."""
    onnx = rd.variants / "onnx" / ONNX
    record = onnx.with_name(PARITY)
    if not onnx.exists():
        return None
    try:
        ok = record.exists() and read_json(record).get("sha256") == _sha256(onnx)
    except (ValueError, AttributeError):
        ok = False
    if not ok:
        console.warn(f"deploy: {onnx} has no passed parity check recorded beside it (an "
                     "optimize stage was interrupted?); the package gets no ONNX. Fix: run "
                     "--stages optimize,deploy.")
        return None
    return onnx


def deploy_stage(rd: RunDir) -> None:
    """Finish the package: add model.onnx and the measured metrics; print how to use it."""
    pkg = load_package(rd.model)
    changes: dict[str, Any] = {}
    onnx = checked_onnx(rd)
    if onnx is not None:
        with atomic_path(rd.model / ONNX, suffix=".onnx") as tmp:
            shutil.copyfile(onnx, tmp)
        changes["files"] = {"onnx": ONNX}
    metrics: dict[str, Any] = {}
    if (rd.evaluation / "metrics.json").exists():
        ev = read_json(rd.evaluation / "metrics.json")
        metrics["evaluation"] = {k: v for k, v in ev.items() if not isinstance(v, dict | list)}
    summary = read_json(rd.variants / "summary.json") \
        if (rd.variants / "summary.json").exists() else None
    # the trade-off table by variant (older summaries: already so); an empty table (no
    # neural member: it only says why) adds nothing
    if summary is not None and summary.get("rows") != []:
        metrics["variants"] = {r["variant"]: r for r in summary["rows"]} \
            if "rows" in summary else summary
    if metrics:
        changes["metrics"] = metrics
    update_package(pkg, **changes)
    if summary is not None and "rows" in summary:
        from launchml.optimize.pick import deploy_pick

        pkg = deploy_pick(rd.model, rd.variants, summary)  # what predict and serve run
    console.info(
        f"deploy: package ready at {rd.model}\n"
        f"  launchml predict {rd.model} "
        f"{'<table file>' if pkg.source == 'table' else '<images or folder>'}\n"
        f"  launchml serve {rd.model} --port 8000"
    )
