"""Write the default Countdown config's test split to the file the task ships
(``trafl.tasks.countdown.SHIPPED_SPLIT``), drawn afresh.

    python scripts/countdown_split.py

Run it after changing the generator or the default config; tests/test_countdown.py checks that
the shipped file is what drawing gives.
"""

from __future__ import annotations

import json

from trafl.tasks.countdown import SHIPPED_SPLIT, Countdown, split_key


def main() -> None:
    task = Countdown()
    problems, _ = task._draw_test_split()
    data = {"config": split_key(task.config), "problems": problems}
    SHIPPED_SPLIT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {len(problems)} problems to {SHIPPED_SPLIT}")


if __name__ == "__main__":
    main()
