"""The forward process and ELBO against exact enumeration on a tiny vocabulary and length."""

from __future__ import annotations

import itertools
import math

import torch

from tests.conftest import make_tiny
from trafl.likelihood.diffusion import elbo_sample, masked_token_logp, sft_loss
from trafl.sampling import left_pad

L = 4


def setup():
    model = make_tiny(alphabet="ab", seed=5, scale=2.0)
    tok = model.tokenizer
    ids, mask = left_pad([tok.encode("ab")], tok.pad_token_id)
    y = torch.tensor([tok.encode("abba")])
    return model, ids, mask, y


def logp_given(model, ids, mask, y, masked: tuple[int, ...]) -> torch.Tensor:
    m = torch.zeros(1, L, dtype=torch.bool)
    m[0, list(masked)] = True
    return masked_token_logp(model, ids, mask, y, m)[0]  # (L,)


def exact_elbo(model, ids, mask, y) -> float:
    """ELBO = sum over nonempty masks M of B(|M|, L-|M|+1) * sum_{i in M} log p(y_i | y_{~M}),
    the t-integral of (1/t) t^|M| (1-t)^(L-|M|) done in closed form."""
    total = 0.0
    for m in range(1, L + 1):
        weight = math.factorial(m - 1) * math.factorial(L - m) / math.factorial(L)
        for masked in itertools.combinations(range(L), m):
            total += weight * logp_given(model, ids, mask, y, masked)[list(masked)].sum().item()
    return total


def exact_random_order_logp(model, ids, mask, y) -> float:
    """log p(y) under: pick a uniformly random order, reveal one token per step from the model."""
    terms = []
    for order in itertools.permutations(range(L)):
        lp = 0.0
        for k, pos in enumerate(order):
            lp += logp_given(model, ids, mask, y, tuple(order[k:]))[pos].item()
        terms.append(lp)
    return torch.logsumexp(torch.tensor(terms), 0).item() - math.log(len(terms))


@torch.no_grad()
def test_monte_carlo_elbo_converges_to_exact_and_lies_below_log_likelihood():
    model, ids, mask, y = setup()
    exact = exact_elbo(model, ids, mask, y)
    log_p = exact_random_order_logp(model, ids, mask, y)
    assert exact < log_p  # Jensen: E_order[log p(y|order)] <= log E_order[p(y|order)]
    n = 40000
    draws = elbo_sample(
        model,
        ids.expand(n, -1),
        mask.expand(n, -1),
        y.expand(n, -1),
        eps=1e-4,
        generator=torch.Generator().manual_seed(0),
    )
    mean, se = draws.mean().item(), draws.std().item() / math.sqrt(n)
    assert abs(mean - exact) < 4 * se + 1e-3, (mean, exact, se)
    assert se < 0.05 * abs(exact)  # the comparison is tight enough to mean something


@torch.no_grad()
def test_elbo_equals_expected_log_likelihood_over_random_orders():
    """The ELBO is E_order[log prod_k p(y_order_k | revealed)]: a second exact route to it."""
    model, ids, mask, y = setup()
    per_order = []
    for order in itertools.permutations(range(L)):
        per_order.append(
            sum(
                logp_given(model, ids, mask, y, tuple(order[k:]))[pos].item()
                for k, pos in enumerate(order)
            )
        )
    assert math.isclose(
        sum(per_order) / len(per_order), exact_elbo(model, ids, mask, y), rel_tol=1e-5
    )


def test_sft_loss_is_normalised_negative_elbo_and_prompt_is_never_masked():
    model, ids, mask, y = setup()
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    loss = sft_loss(model, ids.expand(8, -1), mask.expand(8, -1), y.expand(8, -1), generator=g1)
    elbo = elbo_sample(model, ids.expand(8, -1), mask.expand(8, -1), y.expand(8, -1), generator=g2)
    torch.testing.assert_close(loss, -elbo.mean() / L)
    loss.backward()
    assert model.embed.weight.grad is not None and model.embed.weight.grad.abs().sum() > 0


def test_masked_token_logp_ignores_what_it_cannot_see():
    """Changing a masked token must not change any prediction (it is hidden from the model)."""
    model, ids, mask, y = setup()
    masks = torch.tensor([[True, False, True, False]])
    a = masked_token_logp(model, ids, mask, y, masks)
    y2 = y.clone()
    y2[0, 0] = (
        model.tokenizer.encode("b")[0]
        if y[0, 0] == model.tokenizer.encode("a")[0]
        else model.tokenizer.encode("a")[0]
    )
    b = masked_token_logp(model, ids, mask, y2, masks)
    torch.testing.assert_close(a[0, 2], b[0, 2])  # another masked position: same input, same output
