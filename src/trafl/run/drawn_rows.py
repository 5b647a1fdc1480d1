"""Rows from a file of drawn completions instead of fresh samples: an off-policy behaviour
for TraFL (``rollout.draws``, ``rollout.draws_tilt``).

Trajectory balance holds on whatever rows it is given: at pi* every row's residual is 0. A
step's groups may therefore be drawn from a fixed file of completions of the pool's prompts
(what ``trafl sample output=FILE`` writes: ``prompt``, ``reward``, ``completion_ids``, and the
trajectory ``reveal_step`` and ``token_logp``). Each row of a group is one of its prompt's
completions in the file, drawn with probability proportional to ``exp(draws_tilt * reward)``
(:func:`trafl.tasks.scored_samples.tilted_probabilities`): with the base's own draws and the
tilt b, each row is drawn as the direct fit of docs/TARGET.md sections 12 to 16 draws its
rows, from the file's estimate of the target pi_ref exp(b r) / Z. A file holds finitely many
completions a prompt, so the loss constrains the policy on those alone (as the direct fit
fits the file's empirical law, not pi* itself). OUR knob, for a diagnosis (docs/TARGET.md
section 17), not the paper's: the paper trains on-policy.

Each row's draw comes from the trainer's generator for that row, keyed by (seed, step, global
row): a resumed run on the same device type, or one over several processes, draws the same
rows. The file's sha1 is recorded in the run folder (``draws.json``) and a resume on another
file is refused. Under a fixed pool (``task.pool``, ``task.train_pool``) every training
prompt must be in the file and every record of it must carry the task's own score of its text,
checked when the run starts; otherwise each drawn row is checked as it is drawn. The logged
``reward`` is then the mean reward of the drawn rows, not of the policy's samples.
``sample_logp`` is set to the file's ``token_logp`` (the law at temperature 1); no TraFL loss
reads either.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trafl.core.batch import Rollout, Trajectory
from trafl.core.files import write_text_atomic
from trafl.run.rollouts import score_all
from trafl.sampling.sampler import completion_texts, left_pad
from trafl.tasks.data import DataError, read_local
from trafl.tasks.scored_samples import check_completion, check_reward, tilted_probabilities

FIELDS = ("completion_ids", "reveal_step", "token_logp")


@dataclass
class Drawn:
    """One prompt's completions in the file: (M, L) tensors and (M,) rewards."""

    completion_ids: torch.Tensor  # (M, L) long
    reveal_step: torch.Tensor  # (M, L) long
    token_logp: torch.Tensor  # (M, L) float32
    rewards: torch.Tensor  # (M,) float32
    probabilities: torch.Tensor  # (M,) float64, exp(tilt * reward) normalised


def check_record(path: str | Path, i: int, record: dict, length: int) -> None:
    """One line for a record this knob cannot train on."""
    missing = [k for k in ("prompt", "reward", *FIELDS) if k not in record]
    if missing:
        raise DataError(
            f"{path}: record {i} lacks {', '.join(missing)}; rollout.draws needs what "
            "trafl sample output=FILE writes (prompt, reward, completion_ids, reveal_step, "
            "token_logp)"
        )
    if not isinstance(record["prompt"], str):
        raise DataError(f"{path}: record {i} needs a string 'prompt'")
    check_reward(path, i, record["reward"])
    check_completion(path, i, record, with_ids=True)
    for key in FIELDS:
        if not isinstance(record[key], list) or len(record[key]) != length:
            got = len(record[key]) if isinstance(record[key], list) else repr(record[key])
            raise DataError(
                f"{path}: record {i}'s {key} has {got} positions; the run's "
                f"rollout.sampler.gen_length is {length}"
            )


def load_draws(path: str | Path, tilt: float, length: int) -> dict[str, Drawn]:
    """The file's completions grouped by prompt, each prompt's drawn under ``tilt``."""
    grouped: dict[str, list[dict]] = {}
    for i, record in enumerate(read_local(path), start=1):
        check_record(path, i, record, length)
        grouped.setdefault(record["prompt"], []).append(record)
    if not grouped:
        raise DataError(f"{path}: no completions (rollout.draws)")
    out = {}
    for prompt, records in grouped.items():
        rewards = [float(r["reward"]) for r in records]
        out[prompt] = Drawn(
            torch.tensor([r["completion_ids"] for r in records], dtype=torch.long),
            torch.tensor([r["reveal_step"] for r in records], dtype=torch.long),
            torch.tensor([r["token_logp"] for r in records], dtype=torch.float32),
            torch.tensor(rewards, dtype=torch.float32),
            torch.tensor(tilted_probabilities(rewards, tilt), dtype=torch.float64),
        )
    return out


class DrawnRows:
    """The step's groups drawn from a file (see the module's docstring)."""

    def __init__(self, path: str | Path, tilt: float, length: int) -> None:
        self.path = path
        self.sha1 = hashlib.sha1(Path(path).read_bytes()).hexdigest()
        self.draws = load_draws(path, tilt, length)

    def missing(self, prompt: str) -> DataError:
        return DataError(
            f"{self.path}: no completion of the prompt {prompt!r}; rollout.draws must hold "
            "every prompt the run trains on (a fixed pool: task.pool=N)"
        )

    def mismatch(self, text: str, filed: float, scored: float) -> DataError:
        return DataError(
            f"{self.path}: the file scores {text!r} {filed:g}, the task {scored:g}; "
            "rollout.draws must be this task's samples"
        )

    def check(self, task: Any, problems: list[Any], model: Any) -> None:
        """Every training problem's prompt is in the file, and each of its records carries
        the task's own score of its text (a file of another task or reward is refused)."""
        for problem in problems:
            prompt = task.prompt(problem)
            if prompt not in self.draws:
                raise self.missing(prompt)
            drawn = self.draws[prompt]
            texts = completion_texts(model, drawn.completion_ids)
            scores, _ = score_all(task, [problem] * len(texts), texts)
            for text, filed, score in zip(texts, drawn.rewards.tolist(), scores, strict=True):
                if filed != float(torch.tensor(score["reward"], dtype=torch.float32)):
                    raise self.mismatch(text, filed, score["reward"])

    def pin(self, out: Path, resume: bool, write: bool = True) -> None:
        """Record the file's sha1 in the run folder (``draws.json``, where ``write``); a resume
        on a file of other bytes is refused in one line."""
        record = out / "draws.json"
        if resume and record.is_file():
            started = json.loads(record.read_text())["sha1"]
            if started != self.sha1:
                raise DataError(
                    f"{self.path}: sha1 {self.sha1} is not the {started} this run started on "
                    f"({record}); resume with the file it started on"
                )
        if write:
            write_text_atomic(
                record, json.dumps({"path": str(self.path), "sha1": self.sha1}) + "\n"
            )

    def pick(self, prompt: str, generator: torch.Generator) -> tuple[Drawn, int]:
        """One completion of ``prompt``: its prompt's draws and the index drawn."""
        if prompt not in self.draws:
            raise self.missing(prompt)
        drawn = self.draws[prompt]
        p = drawn.probabilities.to(generator.device)
        return drawn, int(torch.multinomial(p, 1, generator=generator))

    def rollout(
        self, model: Any, prompts: list[str], generators: list[torch.Generator], width: int
    ) -> Rollout:
        """One row per prompt (repeat prompts for a group), row i drawn with generator i: a
        :class:`Rollout` as the sampler returns it, with ``texts`` and the file's rewards."""
        picked = [self.pick(p, g) for p, g in zip(prompts, generators, strict=True)]

        def stack(name: str) -> torch.Tensor:
            return torch.stack([getattr(d, name)[i] for d, i in picked])

        device = next(model.parameters()).device
        ids, mask = left_pad([model.tokenizer.encode_prompt(p) for p in prompts],
                             model.pad_token_id, device, width=width)  # fmt: skip
        reveal, logp = stack("reveal_step").to(device), stack("token_logp").to(device)
        out = Rollout(ids, mask, stack("completion_ids").to(device), Trajectory(reveal, logp, logp))
        out.num_steps = int(reveal.max()) + 1
        out.texts = completion_texts(model, out.completion_ids)
        out.rewards = torch.stack([d.rewards[i] for d, i in picked])  # (N,)
        return out
