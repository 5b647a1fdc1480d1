"""``trafl train``'s settings: the sections of a run and the checks they pass before any work.

Every component section (``task``, ``objective``, ``estimator``) is chosen by name from its
registry; ``rollout.sampler`` is the one sampler setting of the run (rollouts and the in-training
evaluation, greedy). Counts are range-checked here, so a bad value stops the command before a
model loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from trafl.core.config import check_at_least, component
from trafl.likelihood import ESTIMATORS, EstimatorConfig
from trafl.models import ModelConfig
from trafl.objectives import OBJECTIVES, ObjectiveConfig
from trafl.run.optim import OptimConfig
from trafl.run.trackers import LogConfig
from trafl.sampling import SamplerConfig
from trafl.tasks import TASKS, TaskConfig

RESUME_FREE = ("resume", "overwrite", "allow_changes", "out_dir", "steps", "device", "log_every",
               "ckpt_every", "keep_checkpoints", "save_completions_every", "eval_every",
               "eval_problems", "max_bad_steps", "max_reward_error_rate", "log")  # fmt: skip


@dataclass
class RolloutConfig:
    prompts_per_step: int = 16  # B
    group_size: int = 8  # G samples per prompt
    sampler: SamplerConfig = field(
        default_factory=lambda: SamplerConfig(gen_length=16, steps=8, temperature=0.9)
    )
    # exploration for off-policy objectives (TraFL): this share of each group's G samples is
    # drawn from pi_ref instead of the current policy (round(share * G) rows, the group's
    # last); OUR knob, not the paper's (docs/TARGET.md). 0: on-policy, as the paper
    reference_share: float = 0.0
    # replay (trafl.run.replay_buffer), for off-policy objectives: this share of each group's rows
    # (round(share * G), the rows before any pi_ref rows) replaced by distinct completions of
    # the same prompt that earlier steps sampled with reward >= replay_min_reward, where the
    # prompt has any; replay_capacity of them kept per prompt. OUR knob; 0: off
    replay_share: float = 0.0
    replay_capacity: int = 16
    replay_min_reward: float = 1.0
    # rows from a file instead of the policy (trafl.run.drawn_rows), for off-policy objectives:
    # every row of a group is one of its prompt's completions in the file (trafl sample
    # output=FILE, with its trajectories), drawn ~ exp(draws_tilt * reward); the base's own
    # draws at the tilt b give rows drawn as the direct fit's (docs/TARGET.md section 17). OUR knob;
    # None: sample the policy
    draws: str | None = None
    draws_tilt: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.reference_share < 1.0:
            raise ValueError(f"reference_share must be in [0, 1), got {self.reference_share}")
        if not 0.0 <= self.replay_share < 1.0:
            raise ValueError(f"replay_share must be in [0, 1), got {self.replay_share}")
        if self.replay_capacity < 1:
            raise ValueError(f"replay_capacity must be >= 1, got {self.replay_capacity}")
        if not math.isfinite(self.draws_tilt):
            raise ValueError(f"draws_tilt must be finite, got {self.draws_tilt}")
        if self.draws_tilt != 0 and not self.draws:
            raise ValueError(f"draws_tilt={self.draws_tilt:g} needs rollout.draws (a file)")
        if self.draws and (self.reference_share > 0 or self.replay_share > 0):
            raise ValueError(
                "rollout.draws takes every row from its file; reference_share and replay_share "
                f"must then be 0, got {self.reference_share:g} and {self.replay_share:g}"
            )

    def reference_rows(self) -> int:
        """Rows per group drawn from pi_ref."""
        k = round(self.reference_share * self.group_size)
        if self.reference_share > 0 and not 0 < k < self.group_size:
            raise ValueError(
                f"reference_share={self.reference_share:g} gives {k} of group_size="
                f"{self.group_size} rows from pi_ref; valid: 1 to {self.group_size - 1} rows"
            )
        return k

    def replay_rows(self) -> int:
        """Rows per group that replayed completions may take."""
        k, ref = round(self.replay_share * self.group_size), self.reference_rows()
        if self.replay_share > 0 and not 0 < k < self.group_size - ref:
            raise ValueError(
                f"replay_share={self.replay_share:g} gives {k} of group_size={self.group_size} "
                f"rows ({ref} from pi_ref); valid: 1 to {self.group_size - ref - 1} rows"
            )
        return k


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = component(TASKS, "countdown")
    objective: ObjectiveConfig = component(OBJECTIVES, "trafl")
    # default: the estimator the objective is defined on (filled in by fill_defaults)
    estimator: EstimatorConfig = component(ESTIMATORS, "mask_mean")
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-4, warmup_steps=0, min_lr_ratio=1.0)
    )
    steps: int = 200  # rollout batches
    inner_updates: int | None = None  # mu; None: the objective's published default
    micro_batch_groups: int | None = None  # groups per micro-batch; None: the whole batch
    seed: int = 0
    out_dir: str = "runs/train"
    log_every: int = 1
    # where metrics go besides metrics.jsonl: log.to=[tensorboard,wandb,trackio]
    # (trafl.run.trackers); unset: TensorBoard where installed
    log: LogConfig = field(default_factory=LogConfig)
    ckpt_every: int = 25
    keep_checkpoints: int = 2
    save_completions_every: int = 25  # write sampled completions to completions/step-N.jsonl
    # greedy accuracy on eval_problems test problems, decoded as rollouts are (rollout.sampler
    # at temperature 0: the same steps, blocks, top_p and fast modes); 0: never
    eval_every: int = 0
    eval_problems: int = 100
    max_bad_steps: int = 5  # stop after this many non-finite updates in a row
    # stop when more than this share of a step's rewards raise (a broken reward function
    # scores every sample 0, and the run would train on nothing); 1.0: never stop
    max_reward_error_rate: float = 0.5
    # resume=true continues the run in out_dir from its newest checkpoint that verifies; a fresh
    # run into a folder that holds a run is refused unless overwrite=true (deletes that run)
    resume: bool = False
    overwrite: bool = False
    # settings a resume may change beside the bookkeeping ones (RESUME_FREE), e.g. [optim.lr]
    allow_changes: list[str] = field(default_factory=list)
    # copy the trainable weights and their AdamW state before each update and restore them if
    # the update leaves a weight non-finite (trafl.run.guard); false: such an update stops the run
    guard_updates: bool = True
    device: str = "auto"
    # shard weights, gradients and optimizer state over the ranks (FSDP2, trafl.run.sharding);
    # needs several processes and a full-weight policy. None: as the launcher says (an
    # accelerate config with distributed_type FSDP sets ACCELERATE_USE_FSDP=true), else off
    fsdp: bool | None = None

    def __post_init__(self) -> None:
        self.model = ModelConfig.coerce(self.model)
        check_at_least(
            self,
            {
                "steps": 1,
                "inner_updates": 1,
                "micro_batch_groups": 1,
                "log_every": 1,
                "ckpt_every": 0,
                "save_completions_every": 0,
                "eval_every": 0,
                "eval_problems": 1,
                "max_bad_steps": 1,
            },
        )
        check_at_least(self.rollout, {"prompts_per_step": 1, "group_size": 1}, "rollout.")
        if not 0.0 <= self.max_reward_error_rate <= 1.0:
            raise ValueError(
                f"max_reward_error_rate must be in [0, 1], got {self.max_reward_error_rate}"
            )
        objective = OBJECTIVES.get(self.objective.name)
        rule = getattr(objective, "min_group_size", None)  # a user's class may not have one
        least = rule(self.objective) if rule is not None else 1
        if self.rollout.group_size < least:
            raise ValueError(
                f"rollout.group_size must be >= {least} for objective "
                f"{self.objective.name!r} (it compares the samples of a prompt), "
                f"got {self.rollout.group_size}"
            )
        self.rollout.reference_rows()  # a share that rounds to 0 or G rows is refused here
        self.rollout.replay_rows()
        for knob in ("reference_share", "replay_share", "draws"):
            if getattr(self.rollout, knob) and not getattr(objective, "off_policy", False):
                raise ValueError(
                    f"rollout.{knob} needs an objective whose target does not depend on the "
                    f"behaviour policy (trafl, trafl_path); {self.objective.name!r} is on-policy"
                )

    @staticmethod
    def fill_defaults(data: dict[str, Any]) -> dict[str, Any]:
        """Name the objective's own estimator unless the config names one (an unknown
        objective is left for from_dict to report with its key)."""
        data = dict(data)
        objective = data.get("objective") or {}
        objective_name = objective if isinstance(objective, str) else objective.get("name", "trafl")
        estimator = data.get("estimator") or {}
        if isinstance(estimator, str):
            estimator = {"name": estimator}
        if "name" not in estimator and isinstance(objective_name, str):
            try:
                estimator_name = OBJECTIVES.get(objective_name).estimator_name
            except ValueError:
                return data
            data["estimator"] = {"name": estimator_name, **estimator}
        return data
