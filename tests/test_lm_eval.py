"""lm-eval's ``trafl`` model on the shipped base, offline: local YAML tasks over JSONL files
through ``simple_evaluate``, and the requests checked against plain reference computations."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
lm_eval = pytest.importorskip(
    "lm_eval", reason="the lm-eval integration is optional: pip install 'trafl[lm_eval]'"
)

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.api.registry import get_model  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from trafl.core.config import ConfigError  # noqa: E402
from trafl.integrations.lm_eval.model import TraflLM  # noqa: E402
from trafl.integrations.lm_eval.scoring import request_seed  # noqa: E402
from trafl.likelihood.masks import draw_masks  # noqa: E402
from trafl.models import load_model  # noqa: E402
from trafl.sampling import SamplerConfig, generate  # noqa: E402

BASE = Path(__file__).resolve().parents[1] / "models" / "countdown-base"
PROMPTS = ["2 6 4 -> 1:", "1 6 8 -> 48:", "9 1 5 -> 45:"]  # Countdown test problems


@pytest.fixture(scope="module")
def base():
    return load_model(BASE).eval()


def requests(kind: str, args: list[tuple]) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=0) for a in args]


def write_task(folder: Path, name: str, docs: list[dict], spec: str) -> None:
    """A YAML task over a local JSONL file (loaded by datasets' json builder, offline)."""
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        f"  cache_dir: {folder / 'hf'}\ntest_split: test\ndoc_to_text: '{{{{prompt}}}}'\n"
        f"target_delimiter: ''\n{spec}"
    )


def plain_logits(model, ids: list[int]) -> torch.Tensor:
    """The denoiser's float32 logits of one unpadded sequence, the mask token excluded."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()  # (T, V)
    logits[:, model.mask_token_id] = float("-inf")
    return logits


def plain_elbo(model, context: list[int], target: list[int], masks: torch.Tensor) -> float:
    """LLaDA's estimator written out: mean over masks of (L / l) * sum of masked log-probs,
    one forward per mask, no batching or padding."""
    values = []
    for mask in masks:  # (L,) bool
        noisy = [
            model.mask_token_id if m else y for m, y in zip(mask.tolist(), target, strict=True)
        ]
        logp = plain_logits(model, context + noisy)[len(context) :].log_softmax(-1)  # (L, V)
        picked = logp[torch.arange(len(target)), torch.tensor(target)]  # (L,)
        values.append(len(target) / int(mask.sum()) * float(picked[mask].sum()))
    return sum(values) / len(values)


def plain_greedy(model, context: list[int], length: int) -> list[int]:
    """LLaDA's suffix_greedy_prediction: reveal the most confident argmax token, repeat."""
    seq = context + [model.mask_token_id] * length
    for _ in range(length):
        probs = plain_logits(model, seq).softmax(-1)  # (T, V)
        masked = [i for i, t in enumerate(seq) if t == model.mask_token_id]
        conf, token = probs[masked].max(-1)
        best = int(conf.argmax())
        seq[masked[best]] = int(token[best])
    return seq[len(context) :]


def test_simple_evaluate_scores_local_tasks_through_the_sampler_and_the_elbo(
    tmp_path, base, monkeypatch
):
    # lm-eval records torch's collect_env in its results (seconds of subprocesses); not tested
    monkeypatch.setattr("lm_eval.evaluator.add_env_info", lambda results: None)
    _, raw = generate(base, PROMPTS, SamplerConfig(gen_length=16, temperature=0.0))  # trafl's
    cut = [re.split(r"[/*]", text)[0] for text in raw]  # what until ["/", "*"] leaves
    assert cut != raw, f"no stop string occurs in {raw}: the check of `until` would be void"
    targets = [cut[0], cut[1], "nothing like it"]
    docs = [{"prompt": p, "answer": t} for p, t in zip(PROMPTS, targets, strict=True)]
    gen = "output_type: generate_until\ndoc_to_target: '{{answer}}'\n"
    gen += "generation_kwargs:\n  until: ['/', '*']\nmetric_list:\n  - metric: exact_match\n"
    write_task(tmp_path, "trafl_gen", docs, gen)
    mc_docs = [  # a solution against a string no Countdown answer looks like
        {"prompt": PROMPTS[0], "choices": [")))))", "4-6/2"], "label": 1},
        {"prompt": PROMPTS[2], "choices": ["9*5*1", "+-+-+"], "label": 0},
    ]
    mc = "output_type: multiple_choice\ndoc_to_choice: '{{choices}}'\ndoc_to_target: label\n"
    write_task(tmp_path, "trafl_mc", mc_docs, mc + "metric_list:\n  - metric: acc\n")

    out = lm_eval.simple_evaluate(
        model="trafl",  # by its registered name, model_args as on the command line
        model_args=f"pretrained={BASE},gen_length=16,mc_num=16,check_greedy=false",
        tasks=["trafl_gen", "trafl_mc"],
        task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False),
        device="cpu",
        batch_size=4,
        limit=3,
        log_samples=True,
    )
    generated = [s["resps"][0][0] for s in out["samples"]["trafl_gen"]]
    assert generated == cut  # byte for byte the sampler's text, cut at the first stop string
    assert out["results"]["trafl_gen"]["exact_match,none"] == pytest.approx(2 / 3)
    assert out["results"]["trafl_mc"]["acc,none"] == 1.0
    scored = [r[0] for s in out["samples"]["trafl_mc"] for r in s["resps"]]
    assert scored[1][0] > scored[0][0] + 10 and scored[2][0] > scored[3][0] + 10  # nats apart
    assert not any(greedy for _, greedy in scored)  # check_greedy=false reports False


def test_loglikelihood_is_the_elbo_on_the_drawn_masks_and_is_greedy_the_greedy_decode(base):
    tok = base.tokenizer
    context = tok.encode_prompt(PROMPTS[0])
    greedy = tok.decode(plain_greedy(base, context, 5))
    args = [(PROMPTS[0], greedy), (PROMPTS[0], ")))))"), (PROMPTS[2] + " ", "9*5")]
    lm = TraflLM(pretrained=base, mc_num=6, batch_size=5, seed=3)
    got = lm.loglikelihood(requests("loglikelihood", args))

    # the trailing space of the last context moves into its continuation, as in lm-eval
    scored = [*args[:2], (PROMPTS[2], " 9*5")]
    for (request_context, _), (context, target), (logp, _) in zip(args, scored, got, strict=True):
        target_ids = tok.encode(target)
        seed = request_seed(3, request_context)  # the request's masks, as the estimator draws
        valid = torch.ones((1, len(target_ids)), dtype=torch.bool)
        masks = draw_masks(valid, 6, "complementary", torch.Generator().manual_seed(seed))[0]
        want = plain_elbo(base, tok.encode_prompt(context), target_ids, masks)
        # float32 rounding of a padded batch: ~1e-6 per log-prob, times <= 4 tokens * L/l <= 4
        assert logp == pytest.approx(want, abs=1e-4)
    assert [g for _, g in got] == [True, False, False]
    assert got[0][0] > got[1][0] + 10  # the model's own answer over a string of brackets

    again = lm.loglikelihood(requests("loglikelihood", args[:1]))[0][0]
    other_seed = TraflLM(pretrained=base, mc_num=6, seed=4).loglikelihood(
        requests("loglikelihood", args[:1])
    )[0][0]
    assert again == got[0][0] and other_seed != got[0][0]  # deterministic given the seed


def test_results_do_not_depend_on_the_batch_size(base):
    likelihood = requests(
        "loglikelihood", [(PROMPTS[0], "4-6/2"), (PROMPTS[1], "8*6"), (PROMPTS[2], ")))))")]
    )
    generation = requests("generate_until", [(p, {"until": ["*"]}) for p in PROMPTS])
    results = []
    for batch_size in (1, 7):
        lm = TraflLM(pretrained=base, mc_num=4, gen_length=8, batch_size=batch_size)
        results.append((lm.loglikelihood(likelihood), lm.generate_until(generation)))
    (ll_one, gen_one), (ll_many, gen_many) = results
    assert gen_one == gen_many
    assert [g for _, g in ll_one] == [g for _, g in ll_many]
    for (one, _), (many, _) in zip(ll_one, ll_many, strict=True):
        assert one == pytest.approx(many, abs=1e-4)  # padding and batch shapes: rounding only


def test_model_args_are_checked_and_rolling_likelihood_is_refused(base):
    assert get_model("trafl") is TraflLM  # what `--model trafl` looks up
    lm = TraflLM.create_from_arg_string(
        f"pretrained={BASE},gen_length=16,steps=8,cache=none,temperature=0.5,mc_num=2",
        {"batch_size": 3, "device": "cpu"},
    )
    s = lm.settings
    assert (s.sampler.steps, s.sampler.cache, s.sampler.temperature) == (8, "none", 0.5)
    assert (s.mc_num, s.batch_size, s.sampler.batch_size) == (2, 3, 3)
    with pytest.raises(
        ConfigError, match="unknown model_args key 'temprature'; valid: .*temperature"
    ):
        TraflLM(pretrained=base, temprature=0.0)
    with pytest.raises(ConfigError, match="batch_size='auto' is not supported"):
        TraflLM(pretrained=base, batch_size="auto")
    with pytest.raises(ConfigError, match="mc_num must be even"):
        TraflLM(pretrained=base, mc_num=3)
    with pytest.raises(ConfigError, match="needs pretrained="):
        TraflLM()
    with pytest.raises(NotImplementedError, match="no left-to-right factorisation"):
        lm.loglikelihood_rolling(requests("loglikelihood_rolling", [("2 6 4",)]))
