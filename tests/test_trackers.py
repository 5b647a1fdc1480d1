"""Trackers (trafl.run.trackers): metrics.jsonl always, the ``log.to`` list from the registry,
the resolved config handed to every tracker, one-line errors before a model loads, and each real
tracker read back from its offline files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from trafl.commands import train_config
from trafl.commands.cli import main
from trafl.commands.pretrain import RESUME_FREE as PRETRAIN_RESUME_FREE
from trafl.commands.pretrain import PretrainConfig, Pretrainer, pretrain
from trafl.commands.train import TrainConfig, Trainer
from trafl.core.config_files import format_config, load_config
from trafl.core.errors import UserError
from trafl.run import trackers
from trafl.run.folder import RunFolder, changed_settings, check_resume_config
from trafl.run.runtime import MetricsLog
from trafl.run.trackers import TRACKERS, LogConfig, TrackerIds, scalars

SMALL_PRETRAIN = ["arch.hidden_size=16", "arch.num_layers=1", "arch.num_heads=2",
                  "arch.mlp_hidden=32", "batch_size=2", "log_every=1", "eval_every=0",
                  "completion_lengths=[16]", "ckpt_every=0", "device=cpu"]  # fmt: skip


@TRACKERS.register("test_fake")
class FakeSink:
    """Remembers what it was given; ``opened`` holds every instance, newest last."""

    opened: list[FakeSink] = []

    def __init__(self, run_dir: Path, log: LogConfig, config: dict) -> None:
        self.run_dir, self.log_cfg, self.config = run_dir, log, config
        self.rows: list[tuple[int, dict]] = []
        self.closed = False
        FakeSink.opened.append(self)

    def log(self, step: int, metrics: dict) -> None:
        self.rows.append((step, dict(metrics)))

    def close(self) -> None:
        self.closed = True


@TRACKERS.register("test_not_installed")
class NotInstalledSink(FakeSink):
    requires = "trafl_test_no_such_package"
    extra = "nothing"


@TRACKERS.register("test_broken")
class BrokenSink(FakeSink):
    def __init__(self, run_dir: Path, log: LogConfig, config: dict) -> None:
        raise RuntimeError("api key not configured\n(a second line)")


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------- metrics.jsonl


def test_jsonl_keeps_every_value_and_a_resume_cuts_it_back(tmp_path):
    log = MetricsLog(tmp_path, LogConfig(to=[]))
    assert [type(s).__name__ for s in log.sinks] == ["JsonlSink"] and not (tmp_path / "tb").exists()
    log.log(1, {"loss": 0.5, "n": 3, "bad": float("nan"), "note": "x"})
    log.log(2, {"loss": np.float32(0.25), "t": torch.tensor(1.5), "obj": object()})  # no crash
    log.log(3, {"loss": float("inf")})
    got = rows(tmp_path)
    assert [r["step"] for r in got] == [1, 2, 3] and all(r["time"] >= 0 for r in got)
    assert got[0]["loss"] == 0.5 and got[0]["n"] == 3 and math.isnan(got[0]["bad"])
    assert got[0]["note"] == "x" and got[2]["loss"] == math.inf
    assert got[1]["loss"] == 0.25 and got[1]["t"] == 1.5 and got[1]["obj"].startswith("<object")
    log.truncate_after(1)  # resumed from the checkpoint of step 1
    log.log(2, {"loss": 0.125})
    log.close()
    assert [(r["step"], r["loss"]) for r in rows(tmp_path)] == [(1, 0.5), (2, 0.125)]


def test_scalars_are_the_finite_numbers_only():
    metrics = {"a": 1, "b": 0.5, "c": True, "d": np.float32(0.25), "nan": float("nan"),
               "inf": -math.inf, "text": "x", "none": None, "list": [1.0]}  # fmt: skip
    got = scalars(metrics)
    assert got == {"a": 1.0, "b": 0.5, "c": 1.0, "d": 0.25}
    assert all(type(v) is float for v in got.values())


# ---------------------------------------------------------------------- the log section


def test_log_to_reads_names_and_unknown_ones_list_the_valid():
    cfg = load_config(TrainConfig, None, ["log.to=wandb", "log.project=p"])
    assert cfg.log.to == ["wandb"] and cfg.log.project == "p" and cfg.log.name is None
    listed = load_config(TrainConfig, None, ["log.to=[tensorboard,wandb]"]).log.to
    assert listed == ["tensorboard", "wandb"]
    with pytest.raises(ValueError, match="unknown tracker 'wandbb'") as err:
        load_config(PretrainConfig, None, ["log.to=[wandbb]"])
    assert all(name in str(err.value) for name in ("jsonl", "tensorboard", "trackio", "wandb"))


def test_default_is_tensorboard_where_installed(monkeypatch):
    assert LogConfig(to=["wandb", "jsonl", "wandb"]).names() == ["jsonl", "wandb"]
    assert LogConfig(to=[]).names() == ["jsonl"]
    for installed in (True, False):
        monkeypatch.setattr(
            trackers.importlib.util,
            "find_spec",
            lambda name, ok=installed: object() if ok else None,
        )
        assert LogConfig().names() == (["jsonl", "tensorboard"] if installed else ["jsonl"])
        assert LogConfig().names(tensorboard=False) == ["jsonl"]
        LogConfig().check_installed()  # the default asks for nothing: never an error


def test_a_missing_tracker_stops_the_command_before_a_model_loads(tmp_path, monkeypatch, capsys):
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(
        trackers.importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a)
    )
    missing = tmp_path / "no-such-model"  # loading it would fail with another error
    cfg = load_config(TrainConfig, None, [f"model={missing}", "log.to=[test_fake,wandb]"])
    with pytest.raises(UserError) as err:
        Trainer(cfg)
    assert str(err.value) == (
        "log.to=wandb needs wandb: pip install 'trafl[wandb]' (from a checkout: "
        "pip install -e '.[wandb]')"
    )
    cfg = load_config(PretrainConfig, None, [f"init_from={missing}", "log.to=test_not_installed"])
    with pytest.raises(UserError, match=r"needs trafl_test_no_such_package: pip install 'trafl\["):
        Pretrainer(cfg)
    with pytest.raises(SystemExit) as exit_:
        main(["train", f"model={missing}", "log.to=[wandb]", f"out_dir={tmp_path / 'r'}"])
    assert exit_.value.code == 2
    err_lines = [s for s in capsys.readouterr().err.splitlines() if s.strip()]
    assert len(err_lines) == 1 and "log.to=wandb needs wandb" in err_lines[0]
    assert not (tmp_path / "r").exists(), "the run folder was made before the check"


def test_a_tracker_that_fails_to_start_is_one_line_and_closes_the_others(tmp_path):
    FakeSink.opened.clear()
    with pytest.raises(UserError) as err:
        MetricsLog(tmp_path, LogConfig(to=["test_fake", "test_broken"]))
    assert str(err.value) == (
        "log.to=test_broken: the tracker did not start (RuntimeError: api key not configured)"
    )
    assert FakeSink.opened[-1].closed


def test_log_may_change_on_resume_in_train_and_pretrain(tmp_path):
    saved = tmp_path / "config.yaml"
    old = load_config(TrainConfig, None, ["log.to=[]"])
    data = yaml.safe_load(format_config(old))
    del data["log"]  # a run saved before the log section existed
    saved.write_text(yaml.safe_dump(data))
    new = load_config(TrainConfig, None, ["log.to=[test_fake]", "log.project=other"])
    check_resume_config(saved, new, train_config.RESUME_FREE, [])
    assert "log" in PRETRAIN_RESUME_FREE
    with pytest.raises(UserError, match="steps"):  # the check still sees the rest
        check_resume_config(saved, load_config(TrainConfig, None, ["steps=7"]), ("log",), [])


def test_a_setting_added_since_a_run_was_saved_reads_as_its_default(tmp_path):
    """A run (or an evaluation in a result pack) saved before a setting existed behaved as its
    default does: not a change. The same setting saved with another value is one."""
    saved = tmp_path / "config.yaml"
    data = yaml.safe_load(format_config(load_config(TrainConfig, None, [])))
    del data["task"]["train_pool"]  # added after the study's first packs were written
    saved.write_text(yaml.safe_dump(data))
    assert changed_settings(saved, load_config(TrainConfig, None, []), ()) == {}
    changed = load_config(TrainConfig, None, ["task.train_pool=5"])
    assert changed_settings(saved, changed, ()) == {"task.train_pool": "task.train_pool: 0 -> 5"}
    data["task"]["gone"] = 1  # a setting since removed: compared as written
    saved.write_text(yaml.safe_dump(data))
    assert changed_settings(saved, load_config(TrainConfig, None, []), ()) == {
        "task.gone": "task.gone: 1 -> None",
        "task.train_pool": "task.train_pool: None -> 0",
    }


def test_overwrite_deletes_the_tracker_ids(tmp_path):
    TrackerIds(tmp_path).set("wandb", "abc")
    TrackerIds(tmp_path).set("trackio", "run-1")
    assert TrackerIds(tmp_path).read() == {"wandb": "abc", "trackio": "run-1"}
    folder = RunFolder(tmp_path)
    folder.claim(resume=False, overwrite=True)  # a fresh run must not continue the old one
    folder.release()
    assert TrackerIds(tmp_path).get("wandb") is None


# ---------------------------------------------------------------------- one real run


def test_a_run_feeds_the_registered_sinks_and_gives_them_the_resolved_config(tmp_path):
    FakeSink.opened.clear()
    out = tmp_path / "run"
    cfg = load_config(
        PretrainConfig,
        None,
        [*SMALL_PRETRAIN, "steps=2", f"out_dir={out}", "log.to=[test_fake]", "task.num_test=5"],
    )
    pretrain(cfg)
    (sink,) = FakeSink.opened
    assert sink.closed and sink.run_dir == out and sink.log_cfg.to == ["test_fake"]
    assert sink.config == yaml.safe_load((out / "config.yaml").read_text())
    assert sink.config["log"]["to"] == ["test_fake"] and sink.config["steps"] == 2
    logged = [{"step": r.pop("step"), **{k: v for k, v in r.items() if k != "time"}}
              for r in rows(out)]  # fmt: skip
    assert [{"step": s, **m} for s, m in sink.rows] == logged and len(logged) == 2
    assert not (out / "tb").exists(), "log.to names the trackers: no TensorBoard unasked"


# ---------------------------------------------------------------------- real trackers, offline


def test_tensorboard_scalars_config_and_resume_read_back(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLog(tmp_path, LogConfig(to=["tensorboard"]), {"optim": {"lr": 0.001}})
    for step, loss in [(1, 1.0), (2, float("nan")), (3, 3.0)]:
        log.log(step, {"loss": loss, "note": "text"})
    log.truncate_after(1)  # resumed from step 1: steps 2 and 3 are logged again
    log.log(2, {"loss": 20.0})
    log.log(3, {"loss": 30.0})
    log.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(1, 1.0), (2, 20.0), (3, 30.0)]
    (text,) = events.Tensors("config/text_summary")
    assert "lr: 0.001" in text.tensor_proto.string_val[0].decode()


def wandb_records(path: Path) -> list:
    """The records of a ``run-ID.wandb`` file (a LevelDB-style log of protobuf records in 32 KiB
    blocks, after a 7-byte header; each record: crc32, length (2 bytes), type (1 byte))."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, buf, out = 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: the record is whole
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


def test_wandb_offline_run_holds_the_scalars_and_config_and_resumes_its_id(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb", reason="the wandb extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    for quicker in ("DISABLE_GIT", "DISABLE_CODE", "X_DISABLE_STATS", "X_DISABLE_META",
                    "X_DISABLE_MACHINE_INFO"):  # fmt: skip
        monkeypatch.setenv(f"WANDB_{quicker}", "true")  # what this test does not look at
    monkeypatch.setenv("WANDB_X_SAVE_REQUIREMENTS", "false")
    (tmp_path / "wandb-dir").mkdir()
    run = tmp_path / "run"
    run.mkdir()
    TrackerIds(run).set("wandb", "resumed0run1")  # a run folder being resumed
    config = {"optim": {"lr": 0.001}, "steps": 2}
    log = MetricsLog(run, LogConfig(to=["wandb"], project="p"), config)
    log.log(1, {"loss": 0.5, "bad": float("nan"), "note": "x"})
    log.log(2, {"loss": 0.25})
    log.close()
    wandb.teardown()  # finish() may return before the wandb service has written the file
    (file,) = (tmp_path / "wandb-dir").rglob("run-*.wandb")
    assert file.name == "run-resumed0run1.wandb", "the stored id was not resumed"
    records = wandb_records(file)
    (start,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    saved = {i.key: json.loads(i.value_json) for i in start.config.update}
    assert saved["optim"] == {"lr": 0.001} and saved["steps"] == 2
    history = [
        {i.nested_key[0]: json.loads(i.value_json) for i in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    assert [(h["_step"], h["loss"]) for h in history] == [(1, 0.5), (2, 0.25)]
    assert "bad" not in history[0] and "note" not in history[0]
    assert rows(run)[0]["note"] == "x", "metrics.jsonl keeps what trackers cannot draw"


def test_trackio_local_run_holds_the_scalars_and_config_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))  # read when trackio imports
    trackio = pytest.importorskip("trackio", reason="the trackio extra is not installed")
    from trackio.sqlite_storage import SQLiteStorage

    if Path(trackio.utils.TRACKIO_DIR) != tmp_path / "trackio":
        pytest.skip("trackio was imported earlier with another TRACKIO_DIR")
    run = tmp_path / "my-run"
    log_cfg = LogConfig(to=["trackio"], project="p")
    log = MetricsLog(run, log_cfg, {"optim": {"lr": 0.001}})
    log.log(1, {"loss": 0.5, "bad": float("inf")})
    log.close()
    log = MetricsLog(run, log_cfg, {"optim": {"lr": 0.001}})  # the run folder resumed
    log.log(2, {"loss": 0.25})
    log.close()
    assert TrackerIds(run).get("trackio") == "my-run"
    logs = SQLiteStorage.get_logs("p", "my-run")
    assert [(r["step"], r["loss"]) for r in logs] == [(1, 0.5), (2, 0.25)]
    assert "bad" not in logs[0]
    assert SQLiteStorage.get_run_config("p", "my-run")["optim"] == {"lr": 0.001}


@TRACKERS.register("test_import_fails")
class ImportFailsSink(FakeSink):
    def __init__(self, run_dir: Path, log: LogConfig, config: dict) -> None:
        raise ImportError("cannot import name 'x' from 'protobuf'")


def test_a_default_tracker_that_does_not_import_is_skipped_an_asked_one_is_not(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(trackers, "DEFAULT_TRACKERS", ("test_import_fails",))
    log = MetricsLog(tmp_path, LogConfig())  # as TensorBoard installed but broken: skipped
    assert [type(s).__name__ for s in log.sinks] == ["JsonlSink"]
    log.close()
    with pytest.raises(UserError, match="log.to=test_import_fails: the tracker did not start"):
        MetricsLog(tmp_path, LogConfig(to=["test_import_fails"]))
