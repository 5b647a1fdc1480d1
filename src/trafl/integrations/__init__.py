"""Integrations with other tools, each behind an optional extra and imported only when used.

- :mod:`trafl.integrations.lm_eval`: trafl models in EleutherAI's lm-evaluation-harness
  (``pip install 'trafl[lm-eval]'``).
"""
