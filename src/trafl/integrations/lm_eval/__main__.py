"""``python -m trafl.integrations.lm_eval ARGS``: lm-eval's command line, with trafl's model.

lm-eval 0.4 finds a model only in its own registry and discovers no plugins (no entry-point
group is read), so its ``lm_eval`` script cannot know ``--model trafl``. This imports trafl's
model, which registers itself, and hands ARGS to lm-eval's command line unchanged. A trafl
error (bad model_args, model folder or device) is one line on stderr, as in ``trafl``.
"""

from __future__ import annotations

import sys

from trafl.core.errors import TraflError


def main(argv: list[str] | None = None) -> None:
    try:
        from trafl.integrations.lm_eval import model  # noqa: F401  (registers "trafl")
    except ImportError as err:  # its message names the extra to install
        print(f"trafl lm-eval: {err}", file=sys.stderr)
        sys.exit(2)
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    try:
        cli_evaluate()
    except TraflError as err:
        print(f"trafl lm-eval: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
