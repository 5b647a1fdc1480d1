"""The target instrument's plumbing for ``trafl eval`` (the arithmetic is
:mod:`trafl.evaluation.target`): read and check the base's evaluation, find the tilt b a run
was trained for, score the evaluated samples against the reference for the balance gap, and
print the target table. ``cfg`` is an :class:`trafl.commands.eval.EvalConfig`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table
from rich.text import Text

from trafl.core.batch import Rollout, completion_mask_from_eos
from trafl.core.config import to_dict
from trafl.core.config_files import load_saved_config
from trafl.core.errors import UserError
from trafl.evaluation.report import TARGET_LEGEND, target_rows
from trafl.evaluation.target import balance_gap, target_report
from trafl.likelihood import ESTIMATORS, slice_draw
from trafl.objectives import TraFLConfig, sequence_tilt
from trafl.run.runtime import console


@dataclass
class Target:
    """What the target instrument needs beyond the evaluation: the base's eval.json, the tilt
    b (None: only the fitted shift) and where it came from, and pi_ref for the balance gap."""

    base: dict[str, Any]
    b: float | None
    source: str
    reference: Any | None = None


def load_base_eval(path: str) -> dict[str, Any]:
    """The base's eval.json: the file, or an eval.json in the folder (or its ``eval/``)."""
    p = Path(path)
    for candidate in (p, p / "eval.json", p / "eval" / "eval.json"):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    raise UserError(
        f"target.base: no eval.json at {path!r} (give the base's eval.json or its folder)"
    )


def check_same_problems(base: dict[str, Any], result: dict[str, Any], cfg: Any) -> None:
    """One-line error unless the base's eval.json scored the same problems (task and its
    settings, pool, split, number, fingerprint) at every length evaluated here."""
    mine = {"task": cfg.task.name, "split": cfg.split, "num_problems": result["num_problems"]}
    theirs = {key: base.get(key) for key in mine}
    task_mine, task_theirs = to_dict(cfg.task), dict(base.get("config", {}).get("task", {}))
    task_theirs.setdefault("pool", 0)  # an eval.json from before task.pool
    shared = sorted(set(task_mine) & set(task_theirs) - {"train_pool"})  # training-only
    differ = [f"{k}={theirs[k]!r} (here {v!r})" for k, v in mine.items() if theirs[k] != v]
    differ += [
        f"task.{k}={task_theirs[k]!r} (here {task_mine[k]!r})"
        for k in shared
        if task_mine[k] != task_theirs[k]
    ]
    if not differ and base.get("problems_sha1") not in (None, result["problems_sha1"]):
        differ.append("different problems (problems_sha1)")
    missing = [
        str(n)
        for n in cfg.gen_lengths
        if "correct_counts" not in base.get("lengths", {}).get(str(n), {})
    ]
    if missing:
        has = ",".join(base.get("lengths", {}))
        differ.append(f"no correct_counts at L={','.join(missing)} (it has L={has})")
    if differ:
        raise UserError(
            f"target.base was evaluated on other problems: {'; '.join(differ)}; evaluate the "
            "base with the same task, split, num_problems and gen_lengths"
        )


# the sampler fields that change which distribution is decoded (gen_length is per length)
DECODING = ("steps", "temperature", "remasking", "top_p", "block_length", "parallel_threshold",
            "cfg_scale", "suppress_eos")  # fmt: skip


def decoding_differences(theirs: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    """``KEY=THEIRS (here MINE)`` for each decoding field the two sampler configs set apart;
    fields one of them lacks (an older eval.json) are not compared."""
    return [
        f"sampler.{k}={theirs[k]!r} (here {mine[k]!r})"
        for k in DECODING
        if k in theirs and k in mine and theirs[k] != mine[k]
    ]


def check_same_decoding(base: dict[str, Any], cfg: Any) -> None:
    """One-line error unless the base was decoded as this evaluation is: the tilt target is the
    base's distribution reweighted, so a base decoded otherwise is another distribution."""
    differ = decoding_differences(base.get("config", {}).get("sampler", {}), to_dict(cfg.sampler))
    if differ:
        raise UserError(
            f"target.base was decoded otherwise: {'; '.join(differ)}; evaluate the base with "
            "the same sampler"
        )


def prepare_target(cfg: Any, model_path: Path, result: dict[str, Any]) -> Target | None:
    """The base's eval.json (checked against these problems) and the tilt b, or None when
    ``target.base`` is not set."""
    if cfg.target.base is None:
        return None
    base = load_base_eval(cfg.target.base)
    check_same_problems(base, result, cfg)
    check_same_decoding(base, cfg)
    if cfg.target.tilt is not None:
        return Target(base, float(cfg.target.tilt), "given (target.tilt)")
    b, source = run_tilt(Path(cfg.model.path), model_path)
    return Target(base, b, source)


def run_tilt(given: Path, model_path: Path) -> tuple[float | None, str]:
    """b from the evaluated run folder's config.yaml (a TraFL run: :func:`sequence_tilt` at the
    run's group size and rollout length); None, with the reason, where there is none."""
    folders = [given, model_path.parent, model_path.parent.parent]  # run, RUN/model, checkpoint
    config = next((f / "config.yaml" for f in folders if (f / "config.yaml").is_file()), None)
    if config is None:
        return None, "no run config.yaml and no target.tilt: b_hat only"
    from trafl.commands.train_config import TrainConfig  # a run's config, as train wrote it

    try:
        run = load_saved_config(TrainConfig, config)
    except ValueError as err:  # ConfigError too: a config from another version of trafl
        raise UserError(
            f"target.tilt is not set and {config} is not a readable run config "
            f"({err}); set target.tilt"
        ) from None
    if not isinstance(run.objective, TraFLConfig):
        name = run.objective.name
        return None, f"objective {name!r} has no tilt target: b_hat only (set target.tilt)"
    g, length = run.rollout.group_size, run.rollout.sampler.gen_length
    b = sequence_tilt(run.objective, g, length)
    if b is None:
        return None, f"reward_norm={run.objective.reward_norm} is not a tilt: b_hat only"
    o = run.objective
    setting = f"beta={o.beta:g} ({o.beta_units}), reward_norm={o.reward_norm}, log_z={o.log_z}"
    return b, f"{config}: trafl {setting}, G={g}, L={length}"


def target_entry(
    cfg: Any,
    target: Target,
    res: dict[str, Any],
    model: Any,
    scored: Rollout,
    is_correct: np.ndarray,
    length: int,
) -> dict[str, Any]:
    """``lengths.<L>.target``: :func:`target_report` against the base's entry at this length,
    with the balance gap when a reference is loaded."""
    balance = None
    if target.reference is not None:
        k = cfg.target.balance_masks
        log_ratio = log_ratios(model, target.reference, scored, k, cfg.seed, cfg.sampler.batch_size)
        group = np.repeat(np.arange(is_correct.shape[0]), is_correct.shape[1])  # (N,)
        balance = {**balance_gap(log_ratio, is_correct.reshape(-1), group), "num_masks": k}
    base = target.base
    report = target_report(
        base["lengths"][str(length)],
        base["num_samples"],
        res,
        cfg.num_samples,
        target.b,
        cfg.seed,
        balance,
    )
    return {"tilt_source": target.source, "base": base.get("model", ""), **report}


@torch.no_grad()
def log_ratios(
    model: Any, reference: Any, scored: Rollout, num_masks: int, seed: int, batch_size: int
) -> np.ndarray:
    """(N,) D = log pi_theta(y|x) - log pi_ref(y|x) in sequence nats, estimated by
    ``mask_mean`` over all L positions (its per-token ``seq`` times its ``length``) with the
    same K masks for both models, so the mask noise largely cancels in the difference."""
    estimator_cls = ESTIMATORS.get("mask_mean")
    estimator = estimator_cls(estimator_cls.Config(num_masks=num_masks, positions="all"))
    device = scored.completion_ids.device
    scored.completion_mask = completion_mask_from_eos(scored.completion_ids, model.eos_token_id)
    draw = estimator.draw(scored, torch.Generator(device=device).manual_seed(seed))
    chunk = max(1, batch_size // num_masks)  # rows per forward: N*K rows in all
    out = []
    for start in range(0, scored.num_rows, chunk):
        rows = slice(start, start + chunk)
        batch, d = scored.rows(rows), slice_draw(draw, rows)
        mine, ref = estimator.estimate(model, batch, d), estimator.estimate(reference, batch, d)
        out.append((mine.seq * mine.length - ref.seq * ref.length).float().cpu())  # (chunk,)
    return torch.cat(out).numpy()  # (N,)


def print_target_table(result: dict[str, Any]) -> None:
    """The target instrument, one row per length (:func:`trafl.evaluation.report.target_rows`)."""
    header, rows = target_rows({result["model_name"]: result})
    first = result["lengths"][rows[0][1]]["target"]
    table = Table(title=Text(f"target: the base tilted by b ({first['tilt_source']})"))
    for h in header[1:]:
        table.add_column(h, justify="left" if h == "L" else "right")
    for row in rows:
        table.add_row(*row[1:])
    console.print(table)
    console.print(TARGET_LEGEND, markup=False, emoji=False)
