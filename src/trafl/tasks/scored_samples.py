"""Supervised data from a file of scored completions, drawn under a reward tilt.

The file is what ``trafl sample output=FILE`` writes (JSONL, or any file
:func:`trafl.tasks.data.read_local` reads): one record per completion with ``prompt``,
``completion`` and ``reward``. A draw picks a prompt uniformly, then one of its completions
with probability proportional to ``exp(tilt * reward)``:

- ``tilt = 0``: plain SFT on the file's completions;
- completions sampled from pi_ref and ``tilt = b``: a draw from pi_ref(y|x) exp(b r) / Z(x) as
  the file estimates it, the target TraFL trains towards; for a 0/1 reward a prompt's success
  share is then n_s e^b / (n_s e^b + n_f) (n_s, n_f: its successes and failures in the file).
  Fitting it with the SFT loss is the direct fit of docs/TARGET.md section 12.

A prompt whose completions all carry zero probability cannot happen (every weight is > 0).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trafl.tasks.data import DataError, read_local


def tilted_probabilities(rewards: Sequence[float], tilt: float) -> list[float]:
    """exp(tilt * r) normalised over one prompt's completions (shifted by the largest exponent,
    so a large tilt does not overflow)."""
    top = max(tilt * r for r in rewards)
    weights = [math.exp(tilt * r - top) for r in rewards]
    total = sum(weights)
    return [w / total for w in weights]


@dataclass
class ScoredSamples:
    """A file's completions grouped by prompt, in the file's order of first appearance."""

    prompts: list[str]
    completions: list[list[str]]  # per prompt
    probabilities: list[list[float]]  # per prompt, :func:`tilted_probabilities` of its rewards

    @classmethod
    def load(cls, path: str | Path, tilt: float = 0.0) -> ScoredSamples:
        """Read and group the file; a record without ``prompt``, ``completion`` or a numeric
        ``reward`` is one line naming the file and the record."""
        if not math.isfinite(tilt):
            raise DataError(f"data_tilt must be finite, got {tilt}")
        groups: dict[str, tuple[list[str], list[float]]] = {}
        for i, record in enumerate(read_local(path), start=1):
            prompt, completion, reward = (record.get(k) for k in ("prompt", "completion", "reward"))
            if not isinstance(prompt, str) or not isinstance(completion, str):
                raise DataError(
                    f"{path}: record {i} needs string fields 'prompt' and 'completion' "
                    "(the JSONL of trafl sample output=FILE)"
                )
            if isinstance(reward, bool) or not isinstance(reward, int | float):
                raise DataError(f"{path}: record {i} needs a numeric 'reward', got {reward!r}")
            if not math.isfinite(reward):
                raise DataError(f"{path}: record {i} has a reward of {reward}; it must be finite")
            texts, rewards = groups.setdefault(prompt, ([], []))
            texts.append(completion)
            rewards.append(float(reward))
        if not groups:
            raise DataError(f"{path}: no records; it needs one per completion")
        return cls(
            list(groups),
            [texts for texts, _ in groups.values()],
            [tilted_probabilities(rewards, tilt) for _, rewards in groups.values()],
        )

    def draw(self, n: int, rng: random.Random) -> list[tuple[str, str]]:
        """``n`` (prompt, completion) pairs, each a prompt drawn uniformly, then a completion
        of it by its probability."""
        out = []
        for _ in range(n):
            g = rng.randrange(len(self.prompts))
            (completion,) = rng.choices(self.completions[g], weights=self.probabilities[g])
            out.append((self.prompts[g], completion))
        return out
