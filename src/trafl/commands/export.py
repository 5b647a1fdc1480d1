"""``trafl export RUN_OR_CHECKPOINT OUT``: a trained policy as one full model folder, with its card.

A LoRA run saves only its adapter; export loads the base it names, merges the adapter into the
weights and writes a folder that :func:`trafl.models.load_model` (and transformers, for the HF
adapters and for tiny, whose folder carries its modeling code) loads with no adapter and no trafl
run around it. A full-weight run is copied as a plain model folder the same way.

The folder gets a model card, ``README.md``: YAML front matter for the hub (``library_name:
trafl``, tags from the task and the objective, ``base_model``), the evaluation table of the
run's ``eval/eval.json`` if it has one (the table of ``trafl compare``), and the run's resolved
training config (its ``config.yaml``; a shipped base keeps its ``pretrain_config.yaml``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trafl.core.errors import UserError
from trafl.evaluation.report import markdown_table
from trafl.models import ModelConfig, load_model, resolve_model_path
from trafl.models.loading import BASE_MODEL_FILE
from trafl.run.runtime import console

CARD = "README.md"
CONFIG_FILES = ("config.yaml", "pretrain_config.yaml")  # a run's; a shipped base's
TAGS = ["trafl", "diffusion-language-model", "masked-diffusion"]


@dataclass
class ExportConfig:
    # model.path: a run, checkpoint, model or adapter folder; the other model.* keys say how to
    # load the base (e.g. model.trust_remote_code=true for LLaDA and Dream, model.dtype)
    model: ModelConfig = field(default_factory=ModelConfig)
    out: str = ""  # a new (or empty) folder

    def __post_init__(self) -> None:
        self.model = ModelConfig.coerce(self.model)


def export(cfg: ExportConfig) -> Path:
    if not cfg.out:
        raise UserError("export needs an output folder: trafl export RUN_OR_CHECKPOINT OUT")
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; export into a new folder")
    if cfg.model.load_in_4bit:
        raise UserError("cannot export 4-bit weights; load the base in bfloat16 or float32")
    source = Path(resolve_model_path(cfg.model.path))
    model = load_model(cfg.model)
    model.save_pretrained(out)
    (out / CARD).write_text(model_card(source, out), encoding="utf-8")
    console.print(f"exported {source} to {out}")
    return out


def run_folder(source: Path) -> Path | None:
    """The run around a model folder: ``RUN/model`` or ``RUN/checkpoint-N/model``."""
    if source.name != "model":
        return None
    for folder in (source.parent, source.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder
    return None


def training_config(source: Path) -> tuple[str, str] | None:
    """(file name, text) of the resolved training config of the model at ``source``."""
    for folder in filter(None, (run_folder(source), source)):
        for name in CONFIG_FILES:
            if (folder / name).is_file():
                return name, (folder / name).read_text(encoding="utf-8")
    return None


def base_model(source: Path, config: dict[str, Any]) -> str | None:
    """What the model was trained from: an adapter's recorded base, else the config's model."""
    if (source / BASE_MODEL_FILE).is_file():
        return str(json.loads((source / BASE_MODEL_FILE).read_text(encoding="utf-8"))["path"])
    model = config.get("model")
    path = model.get("path") if isinstance(model, dict) else model
    return str(path or config.get("init_from") or "") or None


def front_matter(source: Path, config: dict[str, Any]) -> str:
    """The hub's metadata: the library, tags (plus the task's and objective's names), the base."""
    tags = list(TAGS)
    for section in ("task", "objective"):
        value = config.get(section)
        name = value.get("name") if isinstance(value, dict) else None
        if name and str(name) not in tags:
            tags.append(str(name))
    meta: dict[str, Any] = {"library_name": "trafl", "tags": tags}
    base = base_model(source, config)
    if base:
        meta["base_model"] = base
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def evaluation_section(source: Path) -> list[str]:
    """The run's eval.json as ``trafl compare``'s table, or nothing."""
    run = run_folder(source)
    file = run / "eval" / "eval.json" if run else None
    if file is None or not file.is_file():
        return []
    result = json.loads(file.read_text(encoding="utf-8"))
    if not result.get("lengths"):
        return []
    name = str(result.get("model_name", "model"))
    return [
        "## Evaluation",
        "",
        f"`trafl eval` of `{result.get('model', name)}` on {result.get('task')} "
        f"({result.get('split')} split, {result.get('num_problems')} problems, "
        f"{result.get('num_samples')} samples per problem; `{file.relative_to(run)}` of the run):",
        "",
        markdown_table({name: result}, name),
        "",
    ]


def model_card(source: Path, out: Path) -> str:
    """README.md of an exported folder ``out`` whose model came from ``source``."""
    found = training_config(source)
    config = (yaml.safe_load(found[1]) or {}) if found else {}
    is_tiny = json.loads((out / "config.json").read_text()).get("model_type") == "trafl_tiny"
    lines = [
        front_matter(source, config),
        f"# {out.resolve().name}",
        "",
        f"A masked diffusion language model, written by `trafl export` from `{source}`.",
        "",
        f'Load it with trafl: `trafl sample model={out}` or `trafl.load_model("{out}")`.',
        "",
    ]
    if is_tiny:
        lines += [
            "or with transformers (the modeling code is in the folder):",
            "",
            "```python",
            "from transformers import AutoModel, AutoTokenizer",
            f'model = AutoModel.from_pretrained("{out}", trust_remote_code=True)',
            f'tokenizer = AutoTokenizer.from_pretrained("{out}", trust_remote_code=True)',
            "```",
            "",
        ]
    lines += evaluation_section(source)
    if found:
        name, text = found
        lines += ["## Training config", "", f"The resolved config (`{name}`):", ""]
        lines += ["```yaml", text.rstrip("\n"), "```", ""]
    return "\n".join(lines)
