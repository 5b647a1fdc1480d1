"""Sampling-budget metrics; the implementations live in :mod:`trafl.evaluation`."""

from trafl.evaluation.passk import mean_pass_at_k, pass_at_k, power_of_two_ks

__all__ = ["mean_pass_at_k", "pass_at_k", "power_of_two_ks"]
