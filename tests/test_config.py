"""Config layering, coercion and errors, on toy dataclasses so no real component is needed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from trafl.core.config import (
    ConfigError,
    component,
    deep_merge,
    format_config,
    from_dict,
    load_config,
    load_saved_config,
    parse_overrides,
    save_config,
    to_dict,
)
from trafl.core.registry import Registry

SECTIONS = Registry("section")


@SECTIONS.register("alpha")
class Alpha:
    @dataclass
    class Config:
        name: str = "alpha"
        depth: int = 2
        scale: float = 0.5


@SECTIONS.register("beta")
class Beta:
    @dataclass
    class Config:
        name: str = "beta"
        width: int = 7
        tags: list[str] = field(default_factory=lambda: ["b"])


@dataclass
class Optim:
    lr: float = 1e-3
    weight_decay: float = 0.0
    steps: int = 10

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError("lr must be positive")


@dataclass
class Sampler:
    remasking: Literal["low_confidence", "random"] = "low_confidence"
    gen_lengths: tuple[int, ...] = (16,)
    temperatures: list[float] = field(default_factory=lambda: [1.0])
    greedy: bool = False
    seed: int | None = 0


@dataclass
class Top:
    run_name: str = "run"
    optim: Optim = field(default_factory=Optim)
    sampler: Sampler = field(default_factory=Sampler)
    sec: Any = component(SECTIONS, "alpha")
    out_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_and_lazy_component() -> None:
    cfg = Top()
    assert cfg.sec == Alpha.Config(name="alpha")
    assert from_dict(Top, {}) == cfg


def test_precedence_defaults_yaml_cli(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "c.yaml", {"optim": {"lr": "1e-4", "steps": 5}, "run_name": "y"})
    cfg = load_config(Top, path, ["optim.steps=9", "sec.depth=4"])
    assert cfg.optim.lr == 1e-4  # YAML over default
    assert cfg.optim.steps == 9  # CLI over YAML
    assert cfg.optim.weight_decay == 0.0  # default untouched
    assert cfg.run_name == "y"
    assert cfg.sec == Alpha.Config(name="alpha", depth=4)
    assert load_config(Top) == Top()
    assert load_config(Top, overrides={"optim": {"lr": 0.1}}).optim.lr == 0.1


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ValueError) as err:
        load_config(Top, overrides=["optim.lrr=1"])
    msg = str(err.value)
    assert "'optim.lrr'" in msg and "under 'optim'" in msg
    assert "lr, weight_decay, steps" in msg
    with pytest.raises(ValueError, match="unknown config key 'nope'.*run_name"):
        from_dict(Top, {"nope": 1})


def test_unknown_component_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"sec\.name.*'gamma'.*alpha, beta"):
        load_config(Top, overrides=["sec.name=gamma"])


def test_component_import_path() -> None:
    cfg = from_dict(Top, {"sec": {"name": f"{__name__}:Beta", "width": 1}})
    assert cfg.sec == Beta.Config(name=f"{__name__}:Beta", width=1)
    assert from_dict(Top, to_dict(cfg)) == cfg


def test_literal_error_lists_choices() -> None:
    with pytest.raises(ValueError) as err:
        from_dict(Top, {"sampler": {"remasking": "foo"}})
    assert str(err.value) == (
        "invalid value 'foo' for 'sampler.remasking'; valid: 'low_confidence', 'random'"
    )


def test_type_coercion() -> None:
    cfg = load_config(
        Top,
        overrides=[
            "optim.lr=1e-4",
            "optim.steps='3'",
            "sampler.greedy=Yes",
            "sampler.gen_lengths=16,32",
            "sampler.temperatures=[1, 0.5]",
            "sampler.seed=null",
            "run_name=2024",
            "out_dir=/tmp/x",
        ],
    )
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.steps == 3
    assert cfg.sampler.greedy is True
    assert cfg.sampler.gen_lengths == (16, 32)
    assert cfg.sampler.temperatures == [1.0, 0.5]
    assert cfg.sampler.seed is None
    assert cfg.run_name == "2024"
    assert cfg.out_dir == Path("/tmp/x")

    sampler = from_dict(Sampler, {"gen_lengths": "[16, 32]", "seed": "None", "greedy": "0"})
    assert sampler.gen_lengths == (16, 32) and sampler.seed is None and sampler.greedy is False
    assert from_dict(Sampler, {"gen_lengths": 8, "seed": "5"}) == Sampler(gen_lengths=(8,), seed=5)
    assert from_dict(Optim, {"steps": "1e3"}).steps == 1000


@pytest.mark.parametrize(
    ("data", "where", "expected"),
    [
        ({"optim": {"lr": "fast"}}, "optim.lr", "float"),
        ({"optim": {"steps": 3.5}}, "optim.steps", "int"),
        ({"optim": {"steps": True}}, "optim.steps", "int"),
        ({"sampler": {"greedy": "maybe"}}, "sampler.greedy", "bool"),
        ({"sampler": {"gen_lengths": "16,x"}}, "sampler.gen_lengths[1]", "int"),
        ({"sampler": {"seed": "many"}}, "sampler.seed", "int"),
        ({"run_name": ["a"]}, "run_name", "str"),
        ({"extra": [1]}, "extra", "dict"),
    ],
)
def test_bad_values_name_path_value_and_type(data: Any, where: str, expected: str) -> None:
    with pytest.raises(ValueError) as err:
        from_dict(Top, data)
    msg = str(err.value)
    assert f"'{where}'" in msg and expected in msg and "invalid value" in msg


def test_post_init_error_is_prefixed_with_section() -> None:
    with pytest.raises(ValueError, match="^optim: lr must be positive$"):
        from_dict(Top, {"optim": {"lr": 0}})


def test_component_switch_via_override(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "c.yaml", {"sec": {"depth": 5}})  # alpha implied by default
    cfg = load_config(Top, path, ["sec.name=beta"])
    assert cfg.sec == Beta.Config(name="beta")  # Beta's defaults, alpha's depth dropped
    cfg = load_config(Top, path, ["sec.name=beta", "sec.width=3", "sec.tags=x,y"])
    assert cfg.sec == Beta.Config(name="beta", width=3, tags=["x", "y"])
    with pytest.raises(ValueError, match=r"'sec\.depth'.*section 'beta'.*name, width, tags"):
        load_config(Top, overrides=["sec.name=beta", "sec.depth=1"])
    # Alpha's keys are still valid without a switch, and a same-name override keeps them.
    cfg = load_config(Top, path, ["sec.name=alpha", "sec.scale=2"])
    assert cfg.sec == Alpha.Config(depth=5, scale=2.0)
    assert load_config(Top, overrides=["sec=beta"]).sec == Beta.Config()
    shorthand = write_yaml(tmp_path / "s.yaml", {"sec": "beta"})  # `sec: beta` names the class
    assert load_config(Top, shorthand, ["sec.width=3"]).sec == Beta.Config(width=3)


def test_component_default_is_resolved_lazily() -> None:
    late = Registry("late")

    @dataclass
    class Holder:
        part: Any = component(late, "later")

    @late.register("later")
    class Later:
        @dataclass
        class Config:
            name: str = "later"
            k: int = 1

    assert Holder().part == Later.Config()


def test_deep_merge() -> None:
    base = {"a": {"x": 1, "y": 2}, "b": 1, "sec": {"name": "alpha", "depth": 3}}
    merged = deep_merge(base, {"a": {"y": 3}, "b": [1], "sec": {"name": "beta"}})
    assert merged == {"a": {"x": 1, "y": 3}, "b": [1], "sec": {"name": "beta"}}
    assert base["a"] == {"x": 1, "y": 2}  # inputs untouched
    # With the schema, a non-component section with a `name` key is merged, not dropped.
    assert deep_merge({"extra": {"name": "a", "k": 1}}, {"extra": {"name": "b"}}, Top) == {
        "extra": {"name": "b", "k": 1}
    }


def test_save_load_round_trip(tmp_path: Path) -> None:
    cfg = Top(
        run_name="rt",
        optim=Optim(lr=1e-10, steps=3),
        sampler=Sampler(remasking="random", gen_lengths=(16, 32, 64), seed=None),
        sec=Beta.Config(width=11, tags=["p", "q"]),
        out_dir=Path("runs/x"),
        extra={"note": "1e-4", "nested": {"k": [1, 2]}},
    )
    assert from_dict(Top, to_dict(cfg)) == cfg
    path = tmp_path / "run" / "config.yaml"
    save_config(cfg, path)
    assert load_saved_config(Top, path) == cfg
    assert yaml.safe_load(path.read_text()) == to_dict(cfg)
    text = format_config(cfg)
    assert text.index("run_name") < text.index("optim") < text.index("sec")  # field order kept
    assert "gen_lengths: [16, 32, 64]" in text


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_config(Top, tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="mapping"):
        load_config(Top, write_yaml(tmp_path / "list.yaml", [1, 2]))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(Top, empty) == Top()


def test_parse_overrides() -> None:
    assert parse_overrides(
        ["optim.lr=1e-4", "sampler.gen_lengths=[16,32]", "sec.name=beta", "a.b.c=true", "s="]
    ) == {
        "optim": {"lr": "1e-4"},
        "sampler": {"gen_lengths": [16, 32]},
        "sec": {"name": "beta"},
        "a": {"b": {"c": True}},
        "s": "",
    }
    assert parse_overrides(["p=Answer: 42", "q=null", "r={k: 1}"]) == {
        "p": "Answer: 42",
        "q": None,
        "r": {"k": 1},
    }


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["optim.lr"], "key=value"),
        (["=3"], "empty key"),
        (["optim..lr=3"], "empty key"),
        (["optim.=3"], "empty key"),
        (["a=1", "a.b=2"], "conflicts"),
    ],
)
def test_parse_overrides_errors(args: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_overrides(args)


def test_a_partial_section_keeps_its_fields_own_default_not_the_class_defaults():
    """``optim.lr=...`` once reset warmup_steps/min_lr_ratio to OptimConfig()'s (100 / 0.1)
    instead of the trainer's default (0 / 1.0): every demo run warmed up for 100 updates."""
    from trafl.commands.train import TrainConfig

    default = TrainConfig().optim
    cfg = load_config(TrainConfig, None, ["optim.lr=3e-3", "rollout.sampler.temperature=1.0"])
    assert cfg.optim.lr == 3e-3
    assert (cfg.optim.warmup_steps, cfg.optim.min_lr_ratio) == (
        default.warmup_steps, default.min_lr_ratio)  # fmt: skip
    assert cfg.rollout.sampler.steps == TrainConfig().rollout.sampler.steps  # nested default kept
    assert cfg.rollout.sampler.temperature == 1.0
    # a component that names another class starts from that class's defaults
    other = load_config(TrainConfig, None, ["objective.name=diffu_grpo"])
    assert other.objective.name == "diffu_grpo" and not hasattr(other.objective, "beta")


def test_a_component_name_combines_with_its_keys_in_either_order() -> None:
    for args in (["sec=beta", "sec.width=3"], ["sec.width=3", "sec=beta"]):
        assert parse_overrides(args, Top) == {"sec": {"name": "beta", "width": 3}}
        assert load_config(Top, None, args).sec == Beta.Config(width=3)


def test_a_text_field_keeps_the_command_line_text_as_typed() -> None:
    """``[/INST]`` is a YAML list and ``yes`` a bool; a str field wants the text itself."""
    cfg = load_config(Top, None, ["run_name=[/INST]", "sec=beta", "sec.tags=[a, b]"])
    assert cfg.run_name == "[/INST]" and cfg.sec.tags == ["a", "b"]
    assert load_config(Top, None, ["run_name=yes"]).run_name == "yes"
