"""Config layering, coercion and errors, on toy dataclasses so no real component is needed."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import yaml

from trafl.core.config import (
    ConfigError,
    component,
    from_dict,
    layer,
    parse_overrides,
    to_dict,
)
from trafl.core.config_files import format_config, load_config, load_saved_config, save_config
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


def test_a_text_field_keeps_the_command_line_text_as_typed() -> None:
    """``[/INST]`` is a YAML list and ``yes`` a bool; a str field wants the text itself."""
    cfg = load_config(Top, None, ["run_name=[/INST]", "sec=beta", "sec.tags=[a, b]"])
    assert cfg.run_name == "[/INST]" and cfg.sec.tags == ["a", "b"]
    assert load_config(Top, None, ["run_name=yes"]).run_name == "yes"


# ------------------------------------------------------------ the layering rule, stated once
# (core/config.py, ``layer``): a key takes the value of the highest layer that names it (field
# default < YAML < key=value); a partial section keeps the rest of the layer below, down to its
# field's own default; a component that names another one starts from its own defaults; lists
# and scalars replace; a scalar shorthand is its mapping.


@dataclass
class Leaf:
    a: int = 1
    b: int = 2
    c: list[int] = field(default_factory=lambda: [1])


@dataclass
class Mid:
    x: int = 1
    leaf: Leaf = field(default_factory=Leaf)


@dataclass
class Model:
    shorthand: ClassVar[str] = "path"  # ``model=PATH`` is ``model.path=PATH``

    path: str = "base"
    dtype: str = "auto"


@dataclass
class Layered:
    # field defaults that are not their classes' defaults: the kind of default whose loss
    # withdrew the first demo (``optim.lr=...`` reset the trainer's warmup to OptimConfig()'s)
    mid: Mid = field(default_factory=lambda: Mid(x=5, leaf=Leaf(a=10, b=20, c=[10, 20])))
    sec: Any = component(SECTIONS, "alpha")
    model: Model = field(default_factory=lambda: Model(dtype="float32"))


KEYS = ("mid.x", "mid.leaf.a", "mid.leaf.c", "sec.depth")  # mid.leaf.b, sec.scale: never named


def nested(key: str, value: Any) -> dict[str, Any]:
    head, _, rest = key.partition(".")
    return {head: nested(rest, value) if rest else value}


def get(obj: Any, key: str) -> Any:
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def test_each_key_takes_the_highest_layer_that_names_it(tmp_path: Path) -> None:
    """Every way of naming four keys (nested two deep, a list among them) in the YAML file,
    on the command line, in both or in neither: each key is the highest layer's value, and a
    key no layer names keeps its field's default (a partial section never resets a sibling
    to its class's default, and a list is replaced, never merged)."""
    default = Layered()
    yaml_value = {k: [100] if k.endswith(".c") else 100 + i for i, k in enumerate(KEYS)}
    cli_value = {k: [200, 201] if k.endswith(".c") else 200 + i for i, k in enumerate(KEYS)}
    path = tmp_path / "c.yaml"
    for named in itertools.product(("", "yaml", "cli", "yaml+cli"), repeat=len(KEYS)):
        data: dict[str, Any] = {}
        for key, where in zip(KEYS, named, strict=True):
            if "yaml" in where:
                data = layer(data, nested(key, yaml_value[key]), Layered)
        write_yaml(path, data)
        args = [f"{k}={cli_value[k]}" for k, w in zip(KEYS, named, strict=True) if "cli" in w]
        cfg = load_config(Layered, path, args)
        for key, where in zip(KEYS, named, strict=True):
            want = cli_value if "cli" in where else yaml_value if where else None
            assert get(cfg, key) == (want[key] if want else get(default, key)), (key, named)
        assert (cfg.mid.leaf.b, cfg.sec.scale, cfg.model) == (20, 0.5, default.model)
    assert load_config(Layered) == Layered()
    yaml_path = write_yaml(
        tmp_path / "t.yaml", {"optim": {"lr": "1e-4", "steps": 5}, "run_name": "y"}
    )
    cfg = load_config(Top, yaml_path, ["optim.steps=9", "sec.depth=4"])
    assert (cfg.optim, cfg.run_name, cfg.sec) == (
        Optim(lr=1e-4, steps=9),
        "y",
        Alpha.Config(depth=4),
    )
    assert load_config(Top, overrides={"optim": {"lr": 0.1}}).optim == Optim(lr=0.1)  # a dict


def test_a_partial_section_keeps_its_fields_own_default_not_the_class_defaults() -> None:
    """``optim.lr=...`` once reset warmup_steps/min_lr_ratio to OptimConfig()'s (100 / 0.1)
    instead of the trainer's default (0 / 1.0): every demo run warmed up for 100 updates."""
    from trafl.commands.train import TrainConfig

    default = TrainConfig()
    cfg = load_config(TrainConfig, None, ["optim.lr=3e-3", "rollout.sampler.steps=4"])
    assert cfg.optim == dataclasses.replace(default.optim, lr=3e-3)
    assert cfg.rollout.sampler == dataclasses.replace(default.rollout.sampler, steps=4)
    assert (cfg.rollout.sampler.gen_length, cfg.rollout.sampler.temperature) == (16, 0.9)


def test_a_component_that_names_another_starts_from_its_own_defaults(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "c.yaml", {"sec": {"depth": 5}})  # alpha implied by default
    cfg = load_config(Top, path, ["sec.name=beta"])
    assert cfg.sec == Beta.Config(name="beta")  # Beta's defaults, alpha's depth dropped
    cfg = load_config(Top, path, ["sec.name=beta", "sec.width=3", "sec.tags=x,y"])
    assert cfg.sec == Beta.Config(name="beta", width=3, tags=["x", "y"])
    # a key of the same layer that the new component lacks is an error listing its keys
    with pytest.raises(ValueError, match=r"'sec\.depth'.*section 'beta'.*name, width, tags"):
        load_config(Top, overrides=["sec.name=beta", "sec.depth=1"])
    # Alpha's keys are still valid without a switch, and a same-name override keeps them.
    cfg = load_config(Top, path, ["sec.name=alpha", "sec.scale=2"])
    assert cfg.sec == Alpha.Config(depth=5, scale=2.0)
    assert load_config(Top, overrides=["sec=beta"]).sec == Beta.Config()
    shorthand = write_yaml(tmp_path / "s.yaml", {"sec": "beta"})  # `sec: beta` names the class
    assert load_config(Top, shorthand, ["sec.width=3"]).sec == Beta.Config(width=3)

    from trafl.commands.train import TrainConfig
    from trafl.objectives import SPGConfig

    recipe = write_yaml(tmp_path / "t.yaml", {"objective": {"name": "trafl", "beta": 8}})
    assert load_config(TrainConfig, recipe, ["objective.name=spg"]).objective == SPGConfig()
    with pytest.raises(ValueError, match=r"'objective\.beta'.*objective 'spg'.*eubo_mix"):
        load_config(TrainConfig, None, ["objective.name=spg", "objective.beta=8"])
    other = load_config(TrainConfig, None, ["objective.name=diffu_grpo"])  # over the default
    assert other.objective.name == "diffu_grpo" and not hasattr(other.objective, "beta")


def test_a_shorthand_combines_with_its_keys_in_either_order(tmp_path: Path) -> None:
    for args in (["sec=beta", "sec.width=3"], ["sec.width=3", "sec=beta"]):
        assert parse_overrides(args, Top) == {"sec": {"name": "beta", "width": 3}}
        assert load_config(Top, None, args).sec == Beta.Config(width=3)
    for args in (["model=m", "model.dtype=bf16"], ["model.dtype=bf16", "model=m"]):
        assert load_config(Layered, None, args).model == Model(path="m", dtype="bf16")
    assert load_config(Layered, None, ["model=m"]).model == Model(path="m", dtype="float32")
    for recipe, args in (
        ({"model": "m"}, ["model.dtype=bf16"]),
        ({"model": {"dtype": "bf16"}}, ["model=m"]),
    ):
        path = write_yaml(tmp_path / "m.yaml", recipe)
        assert load_config(Layered, path, args).model == Model(path="m", dtype="bf16")


def test_layer_with_and_without_a_schema() -> None:
    base = {"a": {"x": 1, "y": 2}, "b": 1, "sec": {"name": "alpha", "depth": 3}}
    merged = layer(base, {"a": {"y": 3}, "b": [1], "sec": {"name": "beta"}})
    assert merged == {"a": {"x": 1, "y": 3}, "b": [1], "sec": {"name": "beta"}}
    assert base["a"] == {"x": 1, "y": 2}  # inputs untouched
    # With the schema, a non-component section with a `name` key is merged, not dropped.
    assert layer({"extra": {"name": "a", "k": 1}}, {"extra": {"name": "b"}}, Top) == {
        "extra": {"name": "b", "k": 1}
    }
    assert layer({"sec": "beta"}, {"sec": {"width": 2}}, Top) == {
        "sec": {"name": "beta", "width": 2}
    }


def test_every_registered_component_config_subclasses_its_kind() -> None:
    """``TrainConfig.objective: ObjectiveConfig`` (and task, estimator) is true of every entry."""
    from trafl.likelihood import ESTIMATORS, EstimatorConfig
    from trafl.objectives import OBJECTIVES, ObjectiveConfig
    from trafl.tasks import TASKS, TaskConfig

    for registry, kind in (
        (OBJECTIVES, ObjectiveConfig),
        (ESTIMATORS, EstimatorConfig),
        (TASKS, TaskConfig),
    ):
        for name in registry.names():
            assert issubclass(registry.get(name).Config, kind), name
