"""Bad updates in a row: count them, stop the run after ``max_bad_steps``, and name the
checkpoint to resume from.

The counts live in the run state (``RunState.counters``) so that a resumed run knows how many
updates were skipped before it. The update just before a streak of bad ones may have caused
it (finite but huge weights), so a checkpoint written right after that update is moved aside
(``.suspect``) when an earlier one exists; resume then takes the earlier one.
"""

from __future__ import annotations

from pathlib import Path

from trafl.core.errors import RunStopped
from trafl.core.layout import checkpoints
from trafl.run.runtime import console


class BadUpdates:
    def __init__(
        self, counters: dict[str, int], out: Path, max_in_a_row: int, is_main: bool = True
    ) -> None:
        counters.setdefault("skipped_total", 0)
        counters.setdefault("bad_in_a_row", 0)
        self.counters = counters  # shared with the run state, so checkpoints hold them
        self.out = out
        self.max_in_a_row = max_in_a_row
        self.is_main = is_main
        self.streak_start = 0  # the step whose update began the current streak

    @property
    def in_a_row(self) -> int:
        return self.counters["bad_in_a_row"]

    @property
    def skipped_total(self) -> int:
        return self.counters["skipped_total"]

    def reset(self) -> None:
        self.counters["bad_in_a_row"] = 0

    def record(self, step: int, what: str, loss: float, grad_norm: float) -> None:
        """Count a skipped update of ``step`` (1-based); a streak of ``max_in_a_row`` stops."""
        if self.in_a_row == 0:
            self.streak_start = step
        self.counters["bad_in_a_row"] += 1
        self.counters["skipped_total"] += 1
        console.print(f"step {step}: {what}, update skipped", style="yellow", markup=False)
        if self.in_a_row >= self.max_in_a_row:
            raise RunStopped(
                f"{self.in_a_row} bad updates in a row ({what}; loss={loss:.4g}, "
                f"grad_norm={grad_norm:.4g}); lower optim.lr or check the objective's "
                f"settings. {self.advice(step)}"
            )

    def advice(self, step: int) -> str:
        """Which checkpoint to resume from, moving suspect ones aside (rank 0 only)."""
        if not self.is_main:
            return ""
        start = self.streak_start or step
        found = checkpoints(self.out)
        before = [c for c in found if int(c.name.split("-")[-1]) < start - 1]
        suspect = [c for c in found if int(c.name.split("-")[-1]) >= start - 1]
        if not found:
            return "No checkpoint was written; start again with overwrite=true."
        if not before:
            return (
                f"The only checkpoint, {suspect[-1]}, was written right after the update "
                "before the bad ones and may hold its damage; resume=true continues from it."
            )
        for c in suspect:
            c.rename(c.with_name(c.name + ".suspect"))
        moved = (
            f" ({', '.join(c.name for c in suspect)} moved aside as .suspect)" if suspect else ""
        )
        return (
            f"The last good checkpoint is {before[-1]}{moved}; resume=true continues from it "
            "(allow_changes=[optim.lr] to change the learning rate)."
        )
