"""Text in, completions + trajectories out: tokenisation, micro-batching, progress."""

from __future__ import annotations

import torch
from rich.progress import Progress

from trafl.core.batch import Rollout, Trajectory
from trafl.models.base import DiffusionLM
from trafl.sampling.config import SamplerConfig
from trafl.sampling.sampler import Generators, completion_texts, left_pad, sample


def generate(
    model: DiffusionLM,
    prompts: list[str],
    config: SamplerConfig,
    generator: Generators = None,
    progress: Progress | None = None,
    description: str = "sampling",
    pad_to: int | None = None,
    lengths: list[int] | None = None,
) -> tuple[Rollout, list[str]]:
    """Sample one completion per prompt (repeat prompts for several samples each).

    Prompts are left-padded to one width (at least ``pad_to``), then sampled in micro-batches
    of ``config.batch_size``; ``generator`` is one generator or one per prompt; ``lengths``
    gives each prompt its own completion length (<= ``config.gen_length``, see
    :mod:`trafl.sampling.lengths`). Returns the concatenated rollout and the decoded
    completions."""
    if lengths is not None and len(lengths) != len(prompts):
        raise ValueError(f"{len(lengths)} lengths for {len(prompts)} prompts")
    device = next(model.parameters()).device  # type: ignore[attr-defined]
    encoded = [model.tokenizer.encode_prompt(p) for p in prompts]
    ids, mask = left_pad(encoded, model.pad_token_id, device, width=pad_to)
    was_training = model.training  # type: ignore[attr-defined]
    model.eval()  # type: ignore[attr-defined]
    task = progress.add_task(description, total=len(prompts)) if progress else None
    parts: list[Rollout] = []
    try:
        for start in range(0, len(prompts), config.batch_size):
            sl = slice(start, start + config.batch_size)
            gen = generator if not isinstance(generator, list | tuple) else generator[sl]
            row_lengths = None if lengths is None else lengths[sl]
            parts.append(sample(model, ids[sl], mask[sl], config, gen, row_lengths))
            if progress is not None and task is not None:
                progress.advance(task, parts[-1].completion_ids.shape[0])
    finally:
        model.train(was_training)  # type: ignore[attr-defined]
    rollout = concat_rollouts(parts)
    return rollout, completion_texts(model, rollout.completion_ids)


def concat_rollouts(parts: list[Rollout]) -> Rollout:
    """Stack rollouts that share a prompt width and generation length (rows of per-sequence
    lengths keep them; the others are at the full length)."""
    cat = torch.cat
    lengths = None
    if any(r.lengths is not None for r in parts):  # rows without their own are at full length
        lengths = cat(
            [
                r.completion_ids.new_full(r.completion_ids.shape[:1], r.completion_ids.shape[1])
                if r.lengths is None
                else r.lengths
                for r in parts
            ]
        )
    trajectory = Trajectory(
        reveal_step=cat([r.trajectory.reveal_step for r in parts]),
        token_logp=cat([r.trajectory.token_logp for r in parts]),
        sample_logp=cat([r.trajectory.sample_logp for r in parts]),
    )
    return Rollout(
        prompt_ids=cat([r.prompt_ids for r in parts]),
        prompt_mask=cat([r.prompt_mask for r in parts]),
        completion_ids=cat([r.completion_ids for r in parts]),
        trajectory=trajectory,
        num_steps=max(r.num_steps for r in parts),
        lengths=lengths,
        num_calls=sum(r.num_calls for r in parts),
    )
