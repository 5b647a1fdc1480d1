"""Likelihood estimators: how ``log pi(y | x)`` (or a method's surrogate of it) is estimated.

One file per estimator, registered by name in ``ESTIMATORS``; the interface is in
:mod:`trafl.likelihood.base`. Randomness is drawn once per update (``draw``) and shared by the
policy, the old policy and the reference (``estimate``).

- ``mask_mean``: TraFL's K-mask mean log-prob, E = ELBO / L.
- ``elbo``: LLaDA's (L / l) * sum ELBO estimator (ESPO, GRPO with an ELBO).
- ``one_step``: d1's fully-masked one-step per-token log-probs (diffu-GRPO, wd1).
- ``blockwise``: SPG's block-wise masks with its lower (ELBO) and upper (EUBO) bounds.
- ``trajectory``: exact replay of the recorded reveal path.
"""

from trafl.likelihood import (  # noqa: E402  (each registers itself in ESTIMATORS)
    blockwise,
    elbo,
    mask_mean,
    one_step,
    trajectory,
)
from trafl.likelihood.base import (  # noqa: E402
    ESTIMATORS,
    Draw,
    Estimator,
    EstimatorConfig,
    slice_draw,
)

__all__ = [
    "ESTIMATORS",
    "Draw",
    "Estimator",
    "EstimatorConfig",
    "blockwise",
    "elbo",
    "mask_mean",
    "one_step",
    "slice_draw",
    "trajectory",
]
