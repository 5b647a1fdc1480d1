"""SFT on a file of scored completions under a reward tilt (``trafl pretrain data=FILE
data_tilt=b``): the draw is the tilted distribution the file estimates, exactly, and the rows
that reach the loss are the file's completions."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from tests.conftest import make_tiny
from trafl.commands import pretrain as pretrain_module
from trafl.commands.cli import main
from trafl.commands.pretrain import PretrainConfig, file_batch, pretrain
from trafl.core.config_files import load_config
from trafl.models import load_model
from trafl.tasks.data import DataError
from trafl.tasks.scored_samples import ScoredSamples, tilted_probabilities


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_tilted_probabilities_are_the_tilt_of_the_files_empirical_distribution():
    """Two successes and three failures at b = 4: each success e^4 / (2 e^4 + 3), each failure
    1 / (2 e^4 + 3), so the success share is n_s e^b / (n_s e^b + n_f) (float64: ~1e-16)."""
    probs = tilted_probabilities([1, 0, 0, 1, 0], 4.0)
    z = 2 * math.exp(4) + 3
    assert probs == pytest.approx(
        [math.exp(4) / z, 1 / z, 1 / z, math.exp(4) / z, 1 / z], rel=1e-12
    )
    assert tilted_probabilities([1, 0, 0, 0], 0.0) == [0.25] * 4  # no tilt: the file as it is
    huge = tilted_probabilities([1, 0], 1e4)  # exp(1e4) overflows; shifted, it does not
    assert huge[0] == 1.0 and huge[1] == 0.0


def test_draws_follow_the_tilt_prompt_uniformly_then_completion(tmp_path):
    """Prompt A: one success among ten; at b = ln 9 its success share is 9 / (9 + 9) = 0.5.
    Prompt B: ten failures. 20,000 draws: each prompt's share and A's success share are 0.5
    within 5 binomial sd (0.5 / sqrt(n): 0.0035 for the prompts, 0.005 for A's ~10,000)."""
    records = [{"prompt": "A", "completion": "win" if i == 0 else f"a{i}", "reward": float(i == 0)}
               for i in range(10)]  # fmt: skip
    records += [{"prompt": "B", "completion": f"b{i}", "reward": 0.0} for i in range(10)]
    data = ScoredSamples.load(write(tmp_path / "s.jsonl", records), tilt=math.log(9))
    assert data.prompts == ["A", "B"] and len(data.completions[1]) == 10
    pairs = data.draw(20_000, random.Random(0))
    on_a = [c for p, c in pairs if p == "A"]
    assert abs(len(on_a) / 20_000 - 0.5) < 5 * 0.5 / math.sqrt(20_000)
    assert abs(on_a.count("win") / len(on_a) - 0.5) < 5 * 0.5 / math.sqrt(len(on_a))
    assert {c for p, c in pairs if p == "B"} <= {f"b{i}" for i in range(10)}


@pytest.mark.parametrize(
    "record, message",
    [
        ({"prompt": "A", "reward": 1.0}, "record 2 needs a string 'completion'"),
        ({"completion": "x", "reward": 1.0}, "record 2 needs a string 'prompt'"),
        ({"prompt": "A", "completion": "x", "reward": "1"}, "record 2 needs a numeric 'reward'"),
        ({"prompt": "A", "completion": "x", "reward": True}, "record 2 needs a numeric 'reward'"),
        ({"prompt": "A", "completion": "x", "reward": float("nan")}, "must be finite"),
    ],
)
def test_a_bad_record_is_one_line_naming_the_file_and_record(tmp_path, record, message):
    path = write(tmp_path / "s.jsonl", [{"prompt": "A", "completion": "y", "reward": 0.0}, record])
    with pytest.raises(DataError, match=message) as err:
        ScoredSamples.load(path)
    assert str(path) in str(err.value)


def test_an_empty_file_or_an_infinite_tilt_is_refused(tmp_path):
    with pytest.raises(DataError, match="no records"):
        ScoredSamples.load(write(tmp_path / "e.jsonl", []))
    with pytest.raises(DataError, match="data_tilt must be finite"):
        ScoredSamples.load(write(tmp_path / "s.jsonl", [{"prompt": "A", "completion": "y",
                                                          "reward": 1}]), float("inf"))  # fmt: skip


def test_the_rows_are_the_files_completions_eos_filled(tmp_path):
    """Two prompts, one completion each: every row pairs its prompt's tokens with that prompt's
    completion, EOS-filled to the length; one of exactly the length (sampled without an EOS)
    fits, one longer is refused in one line."""
    tokenizer = make_tiny().tokenizer
    records = [{"prompt": "p:", "completion": "3+4", "reward": 1},
               {"prompt": "q:", "completion": "9*9-1", "reward": 0}]  # fmt: skip
    data = ScoredSamples.load(write(tmp_path / "s.jsonl", records))
    prompts, completions = file_batch(data, tokenizer, 40, 6, random.Random(0))
    eos = tokenizer.eos_token_id
    want = {"p:": tokenizer.encode("3+4") + [eos] * 3, "q:": tokenizer.encode("9*9-1") + [eos]}
    rows = {tuple(p): c for p, c in zip(prompts, completions.tolist(), strict=True)}
    assert rows == {tuple(tokenizer.encode_prompt(k)): v for k, v in want.items()}
    _, exact = file_batch(data, tokenizer, 20, 5, random.Random(0))  # "9*9-1" is 5 tokens
    assert tokenizer.encode("9*9-1") in exact.tolist()
    with pytest.raises(ValueError, match="does not fit completion length 4"):
        file_batch(data, tokenizer, 20, 4, random.Random(0))


def test_token_ids_in_the_file_are_trained_as_they_are(tmp_path):
    """Where every record holds ``completion_ids`` (as trafl sample writes them), the rows are
    those ids up to the first EOS, whatever the text says (a sampled pad, which the text lost,
    stays), EOS-filled from there (what was revealed after it is dropped); ids that are not
    token ids are refused."""
    tokenizer = make_tiny().tokenizer
    eos = tokenizer.eos_token_id
    kept = tokenizer.encode("12") + [tokenizer.pad_token_id] + tokenizer.encode("3")
    ids = kept + [eos] + tokenizer.encode("77")  # junk revealed after the first EOS
    record = {"prompt": "p:", "completion": "123", "completion_ids": ids, "reward": 1}
    data = ScoredSamples.load(write(tmp_path / "s.jsonl", [record]))
    _, completions = file_batch(data, tokenizer, 2, 8, random.Random(0))
    assert completions.tolist() == [kept + [eos] * 4] * 2
    bad = write(tmp_path / "b.jsonl", [record, {**record, "completion_ids": [1, -2]}])
    with pytest.raises(DataError, match="record 2's completion_ids must be a list of token ids"):
        ScoredSamples.load(bad)


def test_pretrain_on_sampled_completions_continues_the_model(tmp_path, monkeypatch):
    """The direct fit's path end to end: ``trafl sample`` writes a model's completions, ``trafl
    pretrain init_from=... data=... data_tilt=4`` continues that model on them; the saved
    model is the initial one moved (not a new tiny model) and its config names the file."""
    model = make_tiny()
    model.save_pretrained(tmp_path / "m")
    samples = tmp_path / "s.jsonl"
    main(["sample", f"model={tmp_path / 'm'}", "num_problems=3", "num_samples=4",
          "sampler.temperature=1.0", "sampler.gen_length=16", f"output={samples}",
          "device=cpu"])  # fmt: skip
    for row in map(json.loads, samples.read_text().splitlines()):  # the ids are the text's
        ids, eos = row["completion_ids"], model.tokenizer.eos_token_id
        cut = ids.index(eos) if eos in ids else len(ids)
        assert len(ids) == 16 and model.tokenizer.decode(ids[:cut]) == row["completion"]

    def no_demonstrations(*args, **kwargs):
        raise AssertionError("data=FILE must replace the task's demonstrations")

    monkeypatch.setattr(pretrain_module, "supervised_batch", no_demonstrations)
    cfg = load_config(PretrainConfig, None, [
        f"init_from={tmp_path / 'm'}", f"data={samples}", "data_tilt=4", "steps=2",
        "batch_size=4", "completion_lengths=[16]", "eval_every=0", "log_every=1",
        f"out_dir={tmp_path / 'fit'}", "device=cpu"])  # fmt: skip
    pretrain(cfg)
    before, after = load_model(tmp_path / "m"), load_model(tmp_path / "fit" / "model")
    assert before.num_parameters() == after.num_parameters()
    moved = [
        not torch.equal(a, b)
        for a, b in zip(before.state_dict().values(), after.state_dict().values(), strict=True)
    ]
    assert any(moved)
    saved = (tmp_path / "fit" / "config.yaml").read_text()
    assert f"data: {samples}" in saved and "data_tilt: 4.0" in saved


def test_a_tilt_without_a_file_is_refused_in_one_line():
    with pytest.raises(ValueError, match="data_tilt=4 weights a file's completions; set data=FILE"):
        load_config(PretrainConfig, None, ["data_tilt=4"])
