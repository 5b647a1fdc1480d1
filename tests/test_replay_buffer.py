"""Replay of past correct completions (trafl.run.replay_buffer, rollout.replay_share)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.test_train import BASE, SMALL
from trafl.commands.train import TrainConfig, Trainer
from trafl.core.batch import Rollout, Trajectory
from trafl.core.config_files import load_config
from trafl.models import load_model
from trafl.run.replay_buffer import ReplayBuffer

G, L = 4, 3


def scored(groups: int, rewards: list[float], first_token: int = 0, length: int = L) -> Rollout:
    """A scored problem-major batch; row r's completion is (first_token + r, r, r, ...)."""
    n = groups * G
    ids = torch.stack([torch.tensor([first_token + r] + [r] * (length - 1)) for r in range(n)])
    return Rollout(
        prompt_ids=torch.zeros(n, 2, dtype=torch.long),
        prompt_mask=torch.ones(n, 2, dtype=torch.bool),
        completion_ids=ids,
        trajectory=Trajectory(
            reveal_step=ids.clone() % 2,
            token_logp=-ids.float(),
            sample_logp=-2 * ids.float(),
        ),
        rewards=torch.tensor(rewards),
        group=torch.arange(groups).repeat_interleave(G),
        texts=[f"text{first_token + r}" for r in range(n)],
        components={"correct": torch.tensor(rewards) * 0.5},
    )


def test_only_completions_that_reached_min_reward_are_kept_distinct_newest_last():
    buf = ReplayBuffer(capacity=2, min_reward=1.0, seed=0)
    buf.add(["a", "b"], scored(2, [1, 0, 1, 0.5, 0, 0, 0, 1]), G)
    assert [s.text for s in buf.entries["a"]] == ["text0", "text2"]
    assert [s.text for s in buf.entries["b"]] == ["text7"]
    buf.add(["a", "b"], scored(2, [1, 0, 0, 0, 0, 0, 0, 0], first_token=100), G)
    # capacity 2: the oldest (text0) leaves; the same completion again only moves
    assert [s.text for s in buf.entries["a"]] == ["text2", "text100"]
    buf.add(["a", "b"], scored(2, [0, 0, 1, 0, 0, 0, 0, 0]), G)
    assert [s.text for s in buf.entries["a"]] == ["text100", "text2"]
    assert buf.stats() == {"replay_prompts": 2.0, "replay_stored": 3.0}


def test_substitute_writes_the_groups_own_stored_rows_before_the_reference_rows():
    buf = ReplayBuffer(capacity=8, min_reward=1.0, seed=0)
    stored = scored(1, [1, 1, 1, 0], first_token=50)  # three completions of prompt "a"
    buf.add(["a"], stored, G)
    fresh = scored(2, [0] * 8)
    before = fresh.completion_ids.clone()
    out, replaced = buf.substitute(fresh, ["a", "z"], G, rows=2, last=1, step=7)
    assert torch.equal(fresh.completion_ids, before), "the sampled batch was changed"
    assert replaced.tolist() == [False, True, True, False, False, False, False, False]
    picked = [int(out.completion_ids[r, 0]) for r in (1, 2)]
    assert len(set(picked)) == 2 and set(picked) <= {50, 51, 52}  # distinct stored ones
    for r in (1, 2):
        s = picked[[1, 2].index(r)] - 50  # the stored row it came from
        assert torch.equal(out.completion_ids[r], stored.completion_ids[s])
        for name in ("reveal_step", "token_logp", "sample_logp"):
            assert torch.equal(
                getattr(out.trajectory, name)[r], getattr(stored.trajectory, name)[s]
            )
        assert out.rewards[r] == 1.0 and out.components["correct"][r] == 0.5
        assert out.texts[r] == f"text{50 + s}"
    untouched = [0, 3, 4, 5, 6, 7]  # "z" has nothing stored; row 3 is the pi_ref row
    assert torch.equal(out.completion_ids[untouched], fresh.completion_ids[untouched])
    again, _ = buf.substitute(fresh, ["a", "z"], G, rows=2, last=1, step=7)
    assert torch.equal(again.completion_ids, out.completion_ids)  # drawn from (seed, step)
    draws = {
        tuple(buf.substitute(fresh, ["a", "z"], G, 2, 1, step)[0].completion_ids[1:3, 0].tolist())
        for step in range(20)
    }
    assert len(draws) > 1, "every step picks the same stored completions"


def test_the_buffer_round_trips_through_its_state():
    buf = ReplayBuffer(capacity=4, min_reward=1.0, seed=0)
    buf.add(["a", "b"], scored(2, [1, 0, 1, 0, 0, 1, 0, 1]), G)
    other = ReplayBuffer(capacity=4, min_reward=1.0, seed=0)
    other.load_state_dict(buf.state_dict())
    fresh = scored(2, [0] * 8, first_token=9)
    a = buf.substitute(fresh, ["a", "b"], G, 2, 0, 3)[0]
    b = other.substitute(fresh, ["a", "b"], G, 2, 0, 3)[0]
    assert torch.equal(a.completion_ids, b.completion_ids)


def replay_config(out: Path, *extra: str) -> TrainConfig:
    return load_config(
        TrainConfig,
        None,
        [f"model={BASE}", f"out_dir={out}", *SMALL, "rollout.sampler.temperature=1.0",
         "rollout.replay_share=0.5", "rollout.replay_min_reward=0.0", "task.pool=2", *extra],
    )  # fmt: skip


def test_a_step_trains_on_the_replayed_rows_of_its_own_prompts(tmp_path):
    trainer = Trainer(replay_config(tmp_path))
    first = trainer.train_step()
    assert first["replay_rows"] == 0.0 and first["replay_stored"] > 0  # nothing stored yet
    data_rng = trainer.data_rng.getstate()
    problems = trainer.task.sample_train(2, trainer.data_rng)
    trainer.data_rng.setstate(data_rng)
    prompts = [trainer.task.prompt(p) for p in problems]
    marker = scored(1, [1.0, 0, 0, 0], first_token=5, length=16)
    marker.completion_ids[0] = trainer.policy.eos_token_id  # an empty completion, reward 1
    trainer.replay.entries, trainer.replay.min_reward = {}, 1.0  # the marker alone
    trainer.replay.add([prompts[1]], marker, G)
    batch = trainer.rollouts().batch
    assert torch.equal(batch.completion_ids[6], marker.completion_ids[0])  # group 1, row 2
    assert float(batch.rewards[6]) == 1.0 and int(batch.completion_mask[6].sum()) == 1
    assert not torch.equal(batch.completion_ids[2], marker.completion_ids[0])  # prompt 0: none
    assert prompts[0] != prompts[1]
    assert trainer.replay_metrics["replay_rows"] == 1 / 8  # row 7: one stored, one row taken


def test_resume_restores_the_buffer_and_equals_an_uninterrupted_run(tmp_path):
    full = Trainer(replay_config(tmp_path / "full", "steps=4", "ckpt_every=2"))
    full.train()
    Trainer(replay_config(tmp_path / "run", "steps=2", "ckpt_every=2")).train()
    resumed = Trainer(replay_config(tmp_path / "run", "steps=4", "ckpt_every=2", "resume=true"))
    resumed.train()
    assert any(m["replay_rows"] > 0 for m in full.history), "nothing was replayed"
    assert [m["replay_rows"] for m in resumed.history] == [m["replay_rows"] for m in full.history][
        2:
    ]
    a, b = load_model(tmp_path / "full" / "model"), load_model(tmp_path / "run" / "model")
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value, atol=0, rtol=0)


def test_replay_is_refused_where_it_cannot_work(tmp_path):
    with pytest.raises(ValueError, match="rollout.replay_share needs an objective"):
        replay_config(tmp_path, "objective.name=diffu_grpo")
    with pytest.raises(ValueError, match=r"gives 4 of group_size=4 rows \(0 from pi_ref\)"):
        replay_config(tmp_path, "rollout.replay_share=0.9")
    with pytest.raises(ValueError, match=r"valid: 1 to 1 rows"):
        replay_config(tmp_path, "rollout.reference_share=0.5")
