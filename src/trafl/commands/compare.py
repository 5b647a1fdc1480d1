"""``trafl compare EVAL...``: one table and one set of plots across evaluated runs.

Each argument is an ``eval.json``, a folder holding one, or a run folder with ``eval/eval.json``.
The first (or ``base=NAME``) is the reference every other method is compared with: a cell is
marked where the method's pass@k is below the base's. Methods whose eval.json carries the target
instrument (``trafl eval target.base=...``) get a second table: b, the fitted b_hat, how well the
tilt predicts each problem's success, tilt violations, distinct@k and the balance gap. The
figures are drawn by ``trafl.evaluation.plots``, the tables and verdicts rendered by
``trafl.evaluation.report``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from trafl.core.errors import UserError
from trafl.evaluation.html import write_html
from trafl.evaluation.plots import plot_coverage_locking, plot_pass_at_k_grid
from trafl.evaluation.report import (
    TARGET_LEGEND,
    Results,
    below_base,
    comparison_rows,
    comparison_sections,
    target_rows,
    verdicts,
)
from trafl.run.runtime import console


@dataclass
class CompareConfig:
    evals: list[str] = field(default_factory=list)  # eval.json files or folders
    names: list[str] = field(default_factory=list)  # display names (default: model names)
    base: str | None = None  # name of the reference method (default: the first)
    out_dir: str = "runs/compare"


def load_eval(path: str) -> dict[str, Any]:
    p = Path(path)
    for candidate in (p, p / "eval.json", p / "eval" / "eval.json"):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text(encoding="utf-8"))
            # cut short: written by an older version, or on a full disk
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise UserError(
                    f"{candidate} is not a whole eval.json ({err}): delete it and evaluate again"
                ) from None
    raise UserError(f"no eval.json at {path!r} (give an eval.json, its folder, or a run folder)")


def compare(cfg: CompareConfig) -> dict[str, Any]:
    if not cfg.evals:
        raise UserError("compare needs at least one eval (evals=[a,b,...])")
    loaded = [load_eval(p) for p in cfg.evals]
    names = cfg.names or [r["model_name"] for r in loaded]
    if len(names) != len(loaded) or len(set(names)) != len(names):
        raise UserError(f"names must be unique, one per eval; got {names}")
    results = dict(zip(names, loaded, strict=True))
    base = cfg.base or names[0]
    if base not in results:
        raise UserError(f"base {base!r} is not one of {names}")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_pass_at_k_grid(results, base, out / "pass_at_k.png")
    plot_coverage_locking(results, out / "coverage_locking.png")
    print_comparison(results, base)
    summary = {
        "base": base,
        "verdicts": verdicts(results, base),
        "below_base": below_base(results, base),
    }
    (out / "compare.json").write_text(json.dumps(summary, indent=1))
    write_reports(results, base, summary["verdicts"], [eval_folder(p) for p in cfg.evals], out)
    for sentence in summary["verdicts"].values():
        console.print(sentence.replace("**", ""))
    return summary


def eval_folder(path: str) -> Path:
    """The folder holding the eval.json that :func:`load_eval` read for ``path``."""
    p = Path(path)
    for candidate in (p, p / "eval.json", p / "eval" / "eval.json"):
        if candidate.is_file():
            return candidate.parent.resolve()
    return p.resolve()


def write_reports(
    results: Results, base: str, sentences: dict[str, str], folders: list[Path], out: Path
) -> None:
    """``out/report.md`` and the same as one self-contained ``out/report.html``: verdicts,
    tables, pass@k and coverage figures, and each method's reveal-order heatmaps."""
    lines = ["# trafl compare", "", *comparison_sections(results, base, sentences), ""]
    lines += ["![pass@k](pass_at_k.png)", "", "![coverage and locking](coverage_locking.png)"]
    for name, folder in zip(results, folders, strict=True):
        for png in sorted(folder.glob("reveal_orders_L*.png")):
            lines += ["", f"Reveal orders of {name} ({png.stem[14:]}):", "", f"![{name}]({png})"]
    markdown = "\n".join(lines) + "\n"
    (out / "report.md").write_text(markdown)
    write_html(markdown, out, out / "report.html")


def print_comparison(results: Results, base: str) -> None:
    header, rows = comparison_rows(results, base)
    table = Table(title=f"pass@k vs {base} (↓ = below the base)")
    for h in header:
        table.add_column(h, justify="left" if h in ("method", "L") else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    header, rows = target_rows(results)
    if rows:
        table = Table(title="does each method reach its tilt target?")
        for h in header:
            table.add_column(h, justify="left" if h in ("method", "L") else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        console.print(TARGET_LEGEND, markup=False, emoji=False)
