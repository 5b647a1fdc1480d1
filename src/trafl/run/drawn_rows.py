"""Rows from a file of drawn completions instead of fresh samples: an off-policy behaviour
for TraFL (``rollout.draws``, ``rollout.draws_tilt``).

Trajectory balance holds for completions from any behaviour policy with full support, so a
step's groups may be drawn from a fixed file of completions of the pool's prompts (what
``trafl sample output=FILE`` writes: ``prompt``, ``reward``, ``completion_ids``, and the
trajectory ``reveal_step`` and ``token_logp``). Each row of a group is one of its prompt's
completions in the file, drawn with probability proportional to ``exp(draws_tilt * reward)``
(:func:`trafl.tasks.scored_samples.tilted_probabilities`): with the base's own draws and the
tilt b, each row is a draw of the file's estimate of the target pi_ref exp(b r) / Z, the rows
the direct fit of docs/TARGET.md sections 12 to 16 trains on. OUR knob, for a diagnosis
(docs/TARGET.md section 17), not the paper's: the paper trains on-policy.

Each row's draw comes from the trainer's generator for that row, keyed by (seed, step, global
row), so a resumed run or one over several processes draws the same rows. The file's rewards
are checked against the task's own scores of the same texts: a file from another task or
reward is refused in one line. ``sample_logp`` is the file's ``token_logp``: ``trafl sample``
draws at the sampler's temperature without top-p, where the two are the same law; a file
drawn otherwise is not what this knob expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trafl.core.batch import Rollout, Trajectory
from trafl.sampling.sampler import completion_texts, left_pad
from trafl.tasks.data import DataError, read_local
from trafl.tasks.scored_samples import tilted_probabilities

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
    for key in FIELDS:
        if len(record[key]) != length:
            raise DataError(
                f"{path}: record {i}'s {key} has {len(record[key])} positions; the run's "
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
        self.draws = load_draws(path, tilt, length)

    def pick(self, prompt: str, generator: torch.Generator) -> tuple[Drawn, int]:
        """One completion of ``prompt``: its prompt's draws and the index drawn."""
        if prompt not in self.draws:
            raise DataError(
                f"{self.path}: no completion of the prompt {prompt!r}; rollout.draws must hold "
                "every prompt the run trains on (a fixed pool: task.pool=N)"
            )
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
