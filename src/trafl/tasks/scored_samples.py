"""Supervised data from a file of scored completions, drawn under a reward tilt.

The file is what ``trafl sample output=FILE`` writes (JSONL, or any file
:func:`trafl.tasks.data.read_local` reads): one record per completion with ``prompt``,
``completion`` and ``reward``. Where every record also holds ``completion_ids`` (``trafl
sample`` writes the token ids as sampled), those are what is trained on, up to the first EOS;
else the text, encoded again (a special token the decoder drops would then be lost). A draw picks a prompt uniformly, then one of its completions
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


SHAPE = "(a record of trafl sample output=FILE: prompt, completion, reward)"


def check_completion(path: str | Path, i: int, record: dict, with_ids: bool) -> str | list[int]:
    """Record ``i``'s completion: its token ids (``with_ids``) or its text."""
    if not with_ids:
        text = record.get("completion")
        if not isinstance(text, str):
            raise DataError(f"{path}: record {i} needs a string 'completion' {SHAPE}")
        return text
    ids = record["completion_ids"]
    if not isinstance(ids, list) or not all(type(t) is int and t >= 0 for t in ids):
        raise DataError(f"{path}: record {i}'s completion_ids must be a list of token ids")
    return ids


def check_reward(path: str | Path, i: int, reward: object) -> None:
    """Record ``i``'s reward is a finite number (not a bool), or one line saying it is not."""
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        raise DataError(f"{path}: record {i} needs a numeric 'reward', got {reward!r}")
    if not math.isfinite(reward):
        raise DataError(f"{path}: record {i} has a reward of {reward}; it must be finite")


@dataclass
class ScoredSamples:
    """A file's completions grouped by prompt, in the file's order of first appearance."""

    prompts: list[str]
    completions: list[list[str | list[int]]]  # per prompt: token ids where the file has them
    probabilities: list[list[float]]  # per prompt, :func:`tilted_probabilities` of its rewards

    @classmethod
    def load(cls, path: str | Path, tilt: float = 0.0) -> ScoredSamples:
        """Read and group the file; a record without ``prompt``, ``completion`` or a numeric
        ``reward`` is one line naming the file and the record."""
        if not math.isfinite(tilt):
            raise DataError(f"data_tilt must be finite, got {tilt}")
        groups: dict[str, tuple[list[str | list[int]], list[float]]] = {}
        records = read_local(path)
        with_ids = bool(records) and all("completion_ids" in r for r in records)
        for i, record in enumerate(records, start=1):
            prompt, reward = record.get("prompt"), record.get("reward")
            completion = check_completion(path, i, record, with_ids)
            if not isinstance(prompt, str):
                raise DataError(f"{path}: record {i} needs a string 'prompt' {SHAPE}")
            check_reward(path, i, reward)
            completions, rewards = groups.setdefault(prompt, ([], []))
            completions.append(completion)
            rewards.append(float(reward))
        if not groups:
            raise DataError(f"{path}: no records; it needs one per completion")
        return cls(
            list(groups),
            [texts for texts, _ in groups.values()],
            [tilted_probabilities(rewards, tilt) for _, rewards in groups.values()],
        )

    def draw(self, n: int, rng: random.Random) -> list[tuple[str, str | list[int]]]:
        """``n`` (prompt, completion) pairs, each a prompt drawn uniformly, then a completion
        of it by its probability."""
        out = []
        for _ in range(n):
            g = rng.randrange(len(self.prompts))
            (completion,) = rng.choices(self.completions[g], weights=self.probabilities[g])
            out.append((self.prompts[g], completion))
        return out
