"""rollout.draws (trafl.run.drawn_rows): every row of a step drawn from a file of the base's
completions under a tilt, the rows the direct fit trains on, for TraFL (docs/TARGET.md section
17). The law of the draws against its exact probabilities, the rows as the file holds them,
resume-invariant draws, and one-line refusals."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from trafl.commands.cli import main
from trafl.commands.train import TrainConfig, Trainer
from trafl.core.config_files import load_config
from trafl.run.drawn_rows import DrawnRows
from trafl.tasks.data import DataError

BASE = Path(__file__).resolve().parents[1] / "models" / "countdown-base"
SMALL = ["rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.sampler.gen_length=16",
         "rollout.sampler.steps=16", "rollout.sampler.remasking=random", "device=cpu",
         "task.pool=2", "save_completions_every=0", "ckpt_every=0"]  # fmt: skip


@pytest.fixture(scope="module")
def draws(tmp_path_factory) -> Path:
    """8 completions of the shipped base for each of the 2 pool problems (its first has one
    success among them, its second none), as ``trafl sample`` writes them."""
    out = tmp_path_factory.mktemp("drawn") / "draws.jsonl"
    main(["sample", f"model={BASE}", "num_problems=2", "num_samples=8", "sampler.temperature=1.0",
          "sampler.gen_length=16", "sampler.steps=16", "sampler.remasking=random",
          f"output={out}", "device=cpu"])  # fmt: skip
    rewards = [json.loads(line)["reward"] for line in out.read_text().splitlines()]
    assert sum(rewards[:8]) == 1 and sum(rewards[8:]) == 0  # what the tests below rely on
    return out


def config(out: Path, *extra: str) -> TrainConfig:
    return load_config(TrainConfig, None, [f"model={BASE}", f"out_dir={out}", *SMALL, *extra])


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_draws_follow_the_tilted_law(tmp_path):
    """One prompt, rewards 1, 0, 0, 0, tilt ln 3: the success is drawn with probability
    3 / (3 + 3) = 1/2, each failure 1/6. 6000 draws with independent generators; each count
    within 4.5 binomial se of n p (a false alarm about 1e-5 a cell)."""
    rows = [{"prompt": "p:", "reward": float(i == 0), "completion_ids": [i] * 4,
             "reveal_step": [0, 1, 2, 3], "token_logp": [-0.5] * 4} for i in range(4)]  # fmt: skip
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    drawn = DrawnRows(path, math.log(3), 4)
    n, counts = 6000, [0] * 4
    for seed in range(n):
        _, i = drawn.pick("p:", torch.Generator().manual_seed(seed))
        counts[i] += 1
    for count, p in zip(counts, [1 / 2, 1 / 6, 1 / 6, 1 / 6], strict=True):
        assert abs(count - n * p) <= 4.5 * math.sqrt(n * p * (1 - p)), counts


def test_every_row_is_a_completion_of_its_prompt_from_the_file(tmp_path, draws):
    """Each row holds one record of its own prompt as filed (ids, reveal steps, log-probs,
    reward); the task's prompts, the groups and the rewards are the sampler's shape."""
    trainer = Trainer(config(tmp_path, f"rollout.draws={draws}", "rollout.draws_tilt=1"))
    batch = trainer.rollouts().batch
    filed = records(draws)
    for row in range(batch.num_rows):
        prompt = trainer.task.prompt(batch.problems[row])
        ids = batch.completion_ids[row].tolist()
        match = [r for r in filed if r["prompt"] == prompt and r["completion_ids"] == ids]
        assert match, (row, prompt, ids)
        assert batch.trajectory.reveal_step[row].tolist() == match[0]["reveal_step"]
        assert torch.equal(batch.trajectory.token_logp[row], torch.tensor(match[0]["token_logp"]))
        assert float(batch.rewards[row]) == match[0]["reward"]
    assert batch.group.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert batch.completion_mask is not None and batch.completion_mask.any(1).all()
    # each row its own draw: row i is what the generator of global row i picks
    for row in range(batch.num_rows):
        prompt = trainer.task.prompt(batch.problems[row])
        drawn, i = trainer.drawn.pick(prompt, trainer.row_generator(row))
        assert torch.equal(batch.completion_ids[row], drawn.completion_ids[i])


def test_a_ranks_share_of_groups_is_those_rows_of_the_whole_batch(tmp_path, draws):
    """Several processes: a rank drawing the groups from the second on (first_row = G) gets
    exactly those rows of the one-process batch, row for row."""
    trainer = Trainer(config(tmp_path, f"rollout.draws={draws}", "rollout.draws_tilt=1"))
    problems = trainer.task.sample_train(2, trainer.data_rng)
    width = max(len(trainer.policy.tokenizer.encode_prompt(trainer.task.prompt(p)))
                for p in problems)  # fmt: skip
    whole = trainer.sample_groups(problems, 0, width)
    share = trainer.sample_groups(problems[1:], 4, width)
    assert torch.equal(share.completion_ids, whole.completion_ids[4:])
    assert torch.equal(share.trajectory.reveal_step, whole.trajectory.reveal_step[4:])


def test_a_large_tilt_draws_only_the_success_of_a_prompt_that_has_one(tmp_path, draws):
    """At tilt 50 a failure of the first problem is drawn with probability about 7 e^-50: every
    row of its groups is its one success, over 5 steps; the second problem's rows, all
    failures, are not one completion (more than one distinct completion among its 20 rows)."""
    trainer = Trainer(config(tmp_path, f"rollout.draws={draws}", "rollout.draws_tilt=50"))
    success = next(r for r in records(draws) if r["reward"] == 1.0)
    seen = {True: set(), False: set()}
    for step in range(5):
        trainer.step = step
        batch = trainer.rollouts().batch
        for row in range(batch.num_rows):
            first = trainer.task.prompt(batch.problems[row]) == success["prompt"]
            seen[first].add(tuple(batch.completion_ids[row].tolist()))
    assert seen[True] == {tuple(success["completion_ids"])}
    assert len(seen[False]) > 1


def test_a_step_draws_the_same_rows_again_and_the_next_step_others(tmp_path, draws):
    """Rows are keyed by (seed, step, row): the same step drawn again (a resume) gives the same
    rows whatever the policy, the next step other ones; a TraFL step on them trains."""
    trainer = Trainer(config(tmp_path, f"rollout.draws={draws}", "rollout.draws_tilt=2"))
    state = trainer.data_rng.getstate()
    first = trainer.rollouts().batch.completion_ids
    trainer.data_rng.setstate(state)
    with torch.no_grad():
        for p in trainer.policy.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    assert torch.equal(trainer.rollouts().batch.completion_ids, first)
    trainer.step = 1
    trainer.data_rng.setstate(state)
    assert not torch.equal(trainer.rollouts().batch.completion_ids, first)
    before = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    metrics = trainer.train_step()
    assert math.isfinite(metrics["loss"])
    after = trainer.policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_a_file_the_task_scores_otherwise_is_refused_before_any_step(tmp_path, draws):
    """Every reward flipped: the pool's records are scored when the run starts."""
    rows = [r | {"reward": 1.0 - r["reward"]} for r in records(draws)]
    path = tmp_path / "wrong.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"wrong\.jsonl: the file scores '.*' [01], the task [01];"):
        Trainer(config(tmp_path / "run", f"rollout.draws={path}"))


def test_a_pool_prompt_missing_from_the_file_is_refused_before_any_step(tmp_path, draws):
    path = tmp_path / "half.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records(draws)[:8]))  # problem 0
    with pytest.raises(DataError, match="no completion of the prompt '2 6 4 -> 1:'"):
        Trainer(config(tmp_path / "run", f"rollout.draws={path}"))


def test_a_resume_on_a_file_of_other_bytes_is_refused(tmp_path, draws):
    """The run folder records the file's sha1; the same path rewritten (one record dropped)
    cannot continue the run, the same bytes can."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(draws.read_bytes())
    run = tmp_path / "run"
    Trainer(config(run, f"rollout.draws={path}", "steps=1", "ckpt_every=1")).train()
    assert (
        json.loads((run / "draws.json").read_text())["sha1"]
        == hashlib.sha1(draws.read_bytes()).hexdigest()
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in records(draws)[1:]))
    again = config(run, f"rollout.draws={path}", "steps=2", "resume=true")
    with pytest.raises(DataError, match="is not the .* this run started on"):
        Trainer(again).train()
    path.write_bytes(draws.read_bytes())
    Trainer(config(run, f"rollout.draws={path}", "steps=2", "resume=true")).train()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("order", ["recorded", "fresh"])
def test_trafl_path_trains_on_the_files_trajectories(tmp_path, draws, order):
    """The exact-path variant replays each row's filed reveal order, or a fresh order of the
    filed steps: a step is finite."""
    cfg = config(
        tmp_path, f"rollout.draws={draws}", "objective.name=trafl_path", f"estimator.order={order}"
    )
    assert math.isfinite(Trainer(cfg).train_step()["loss"])


def test_the_file_must_fit_the_runs_length_and_hold_trajectories(tmp_path, draws):
    with pytest.raises(
        DataError,
        match="completion_ids has 16 positions; the run.s rollout.sampler.gen_length is 24",
    ):
        Trainer(config(tmp_path / "a", f"rollout.draws={draws}", "rollout.sampler.gen_length=24"))
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"prompt": "p:", "reward": 0.0, "completion": "1"}) + "\n")
    with pytest.raises(DataError, match="record 1 lacks completion_ids, reveal_step, token_logp"):
        Trainer(config(tmp_path / "b", f"rollout.draws={bare}"))
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps(records(draws)[0] | {"reward": True}) + "\n")
    with pytest.raises(DataError, match="record 1 needs a numeric 'reward', got True"):
        Trainer(config(tmp_path / "c", f"rollout.draws={odd}"))


def test_draws_are_refused_where_they_cannot_work(tmp_path, draws):
    with pytest.raises(ValueError, match="'diffu_grpo' is on-policy"):
        config(tmp_path, "objective.name=diffu_grpo", f"rollout.draws={draws}")
    for share in ("reference_share", "replay_share"):
        with pytest.raises(ValueError, match="reference_share and replay_share must then be 0"):
            config(tmp_path, f"rollout.draws={draws}", f"rollout.{share}=0.5")
    with pytest.raises(ValueError, match="draws_tilt=4 needs rollout.draws"):
        config(tmp_path, "rollout.draws_tilt=4")
    with pytest.raises(ValueError, match="draws_tilt must be finite"):
        config(tmp_path, f"rollout.draws={draws}", "rollout.draws_tilt=inf")
