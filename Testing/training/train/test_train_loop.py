"""The trainer end to end on a tiny stand-in cohort: outputs, provenance, exact resumption, CLI, DDP (gloo)."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_tiny_cohort
from MTSASegmenterLib.config import NetConfig, PreprocessConfig
from MTSASegmenterLib.errors import EXIT_ERROR, InputError, MTSAError
from MTSASegmenterLib.model.checkpoint import load_checkpoint

from training.train.cli import main
from training.train.config import TrainConfig
from training.train.loop import train

NET = NetConfig(in_channels=3, base_width=4, input_size=64)
PRE = PreprocessConfig(input_size=64, context_slices=1)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_cohort(tmp_path_factory.mktemp("tiny") / "cohort", n=5)


def config(cohort: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=cohort, out=out, net=NET, preprocess=PRE, epochs=2, batch_size=4, val_fraction=0.25,
                free_share=0.2, num_workers=0, progress_bar=False, device="cpu", cache_dir=cohort.parent / "cache")
    return TrainConfig(**{**base, **kw})


def test_train_writes_checkpoint_logs_and_state(cohort: Path, tmp_path: Path) -> None:
    calls: list[tuple[float, str]] = []
    best = train(config(cohort, tmp_path / "run", command="pytest"), progress=lambda f, m: calls.append((f, m)))
    assert best == tmp_path / "run" / "best.pt"
    model = load_checkpoint(best)
    training = model.info.training
    assert model.net_config == NET and model.preprocess == PRE and model.info.synthetic_only
    assert training["seed"] == 0 and training["command"] == "pytest" and training["split"]["kind"] == "random"
    assert training["split"]["val"]["cases"] == 1 and training["split"]["test"]["cases"] == 1
    assert len(training["cases_csv_sha256"]) == 64 and training["slices"]["train"] > 0
    assert {"best_epoch", "val_loss", "val_dice", "sigma_gtv", "sigma_egfr"} <= set(model.info.metrics)
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_total", "train_dice", "train_focal", "train_egfr", "val_loss", "train_slices_per_s"} <= set(rows[0])
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "run" / "tb").iterdir())
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)  # plain data
    assert last["state"]["epoch"] == 1 and "optimizer" in last and "rng" in last
    assert calls[-1][0] == 1.0 and all(0 <= f <= 1 for f, _ in calls)


def poisoned_augmentation(every: int):
    """An augmentation that turns every ``every``-th sample into NaN: the bad sample a trainer must survive."""
    count = iter(range(10**9))

    def augment(image, mask, rng):
        return (np.full_like(image, np.nan) if next(count) % every == 0 else image), mask

    return lambda clip_max: augment


def test_a_non_finite_batch_is_skipped_not_learnt(cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("training.train.loop.default_augmentation", poisoned_augmentation(every=7))
    best = train(config(cohort, tmp_path / "run", augment=True))
    assert "batches with a non-finite image" in capsys.readouterr().err
    assert all(torch.isfinite(v).all() for v in load_checkpoint(best).net.state_dict().values())
    monkeypatch.setattr("training.train.loop.default_augmentation", poisoned_augmentation(every=1))
    with pytest.raises(MTSAError, match="every batch of epoch 1 was non-finite"):
        train(config(cohort, tmp_path / "all-bad", augment=True))


def test_resume_replays_the_uninterrupted_run(cohort: Path, tmp_path: Path) -> None:
    straight = config(cohort, tmp_path / "straight", epochs=2)
    train(straight)
    interrupted = config(cohort, tmp_path / "resumed", epochs=1)
    train(interrupted)
    with pytest.raises(MTSAError, match="holds a previous run"):
        train(replace(interrupted, epochs=2))
    with pytest.raises(MTSAError, match="cannot resume with different lr"):
        train(replace(interrupted, epochs=2, lr=1e-3, resume=True))
    # A run saved before the trainer gained a setting (nested or top-level) resumes while it keeps its default.
    state = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    del state["config"]["loss"]["tumour_slice_dice"], state["config"]["amp"]
    torch.save(state, tmp_path / "resumed" / "last.pt")
    with pytest.raises(MTSAError, match="cannot resume with different loss"):
        train(replace(interrupted, epochs=2, resume=True, loss=replace(interrupted.loss, tumour_slice_dice=0.5)))
    with pytest.raises(MTSAError, match="cannot resume with different amp"):
        train(replace(interrupted, epochs=2, resume=True, amp=False))
    train(replace(interrupted, epochs=2, resume=True))
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert a["state"] == b["state"]
    for key, value in a["net"].items():
        assert torch.equal(value, b["net"][key]), key
    assert torch.equal(a["loss"]["log_vars"], b["loss"]["log_vars"])


def test_learning_rate_decays_over_the_last_epochs_only(tmp_path: Path) -> None:
    constant = TrainConfig(data=tmp_path, out=tmp_path, epochs=5)
    assert [constant.learning_rate(e) for e in range(5)] == [3e-4] * 5  # the paper's
    decayed = [TrainConfig(data=tmp_path, out=tmp_path, epochs=5, lr_decay_epochs=3).learning_rate(e) for e in range(5)]
    assert decayed[:2] == [3e-4, 3e-4] and 3e-4 > decayed[2] > decayed[3] > decayed[4] > 0
    assert decayed[2] == pytest.approx(3e-4 * 0.5 * (1 + math.cos(math.pi / 4)))
    with pytest.raises(ValueError, match="lr_decay_epochs must be in"):
        TrainConfig(data=tmp_path, out=tmp_path, epochs=5, lr_decay_epochs=6)


def test_a_finished_run_extended_by_a_decay_equals_the_straight_run(cohort: Path, tmp_path: Path) -> None:
    straight = config(cohort, tmp_path / "straight", epochs=3, lr_decay_epochs=2)
    train(straight)
    rows = list(csv.DictReader(open(tmp_path / "straight" / "log.csv")))
    assert [float(r["lr"]) for r in rows] == [pytest.approx(straight.learning_rate(e)) for e in range(3)]
    final = load_checkpoint(tmp_path / "straight" / "final.pt")
    assert final.info.metrics["epoch"] == 3 and final.info.metrics["val_loss"] == pytest.approx(float(rows[-1]["val_loss"]))
    # One constant-rate epoch, then the decay added: the first epoch's rate is the same, so it may resume.
    train(config(cohort, tmp_path / "extended", epochs=1))
    train(replace(straight, out=tmp_path / "extended", resume=True))
    a, b = (load_checkpoint(tmp_path / run / "final.pt").net.state_dict() for run in ("straight", "extended"))
    for key, value in a.items():
        assert torch.equal(value, b[key]), key
    # A run already in its decay cannot stretch it: that would change the rate of the epochs it trained.
    train(config(cohort, tmp_path / "decaying", epochs=2, lr_decay_epochs=2))
    with pytest.raises(MTSAError, match="change the learning rate of the 2 epochs already trained"):
        train(config(cohort, tmp_path / "decaying", epochs=3, lr_decay_epochs=3, resume=True))


def test_init_starts_from_a_checkpoint_and_refuses_another_network(cohort: Path, tmp_path: Path) -> None:
    start = train(config(cohort, tmp_path / "start", epochs=1))
    # A rate too small to move a weight measurably: the fine-tuned weights are those it started from
    # (BatchNorm's running statistics move whatever the rate, so only the parameters are compared).
    tuned = load_checkpoint(train(config(cohort, tmp_path / "tuned", epochs=1, lr=1e-12, init=start)))
    fresh = load_checkpoint(train(config(cohort, tmp_path / "fresh", epochs=1, lr=1e-12)))
    started = load_checkpoint(start)
    a, b, c = (dict(m.net.named_parameters()) for m in (started, tuned, fresh))
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert not all(torch.allclose(a[k].float(), c[k].float(), atol=1e-6) for k in a)
    assert tuned.info.training["init_sha256"] == started.sha256 and fresh.info.training["init_sha256"] is None
    with pytest.raises(InputError, match=r"start/best.pt: its network differs from this run's: base_width 4 \(run: 8\)"):
        train(config(cohort, tmp_path / "wider", net=replace(NET, base_width=8), init=start))
    assert not (tmp_path / "wider").exists()  # refused before anything is written
    with pytest.raises(InputError, match=r"its preprocessing differs from this run's: min_slice_mm 1.0 \(run: 1.5\)$"):
        train(config(cohort, tmp_path / "thicker", preprocess=replace(PRE, min_slice_mm=1.5), init=start))
    # The thick-slice limit may change: the tiny cohort's 1.5 mm slices are trained on at 0.75 mm, twice as many.
    onto = load_checkpoint(train(config(cohort, tmp_path / "onto", epochs=1, preprocess=replace(PRE, max_slice_mm=1.0), init=start)))
    assert onto.preprocess.max_slice_mm == 1.0 and started.preprocess.max_slice_mm == 0.0
    assert onto.info.training["slices"]["train"] > 1.5 * started.info.training["slices"]["train"]


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_single_task_modes(cohort: Path, tmp_path: Path, task: str) -> None:
    net = replace(NET, segmentation=task == "segmentation", classification=task == "classification")
    model = load_checkpoint(train(config(cohort, tmp_path / task, net=net, epochs=1)))
    assert [t.kind for t in model.tasks] == (["segmentation"] if task == "segmentation" else ["binary"])
    key = "sigma_gtv" if task == "segmentation" else "sigma_egfr"
    assert model.info.metrics[key] == 1.0 and len([k for k in model.info.metrics if k.startswith("sigma_")]) == 1  # one task: nothing to weigh


def test_cli(cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    common = ["--input-size", "64", "--width", "4", "--epochs", "1", "--workers", "0", "--no-progress", "--device", "cpu",
              "--val-fraction", "0.25", "--split", "temporal", "--weighting", "equal", "--cache-dir", str(cohort.parent / "cache")]
    assert main(["--data", str(cohort), "--out", str(tmp_path / "cli"), "--name", "Site A GTV", *common]) == 0
    best = Path(capsys.readouterr().out.strip())
    info = load_checkpoint(best).info
    assert info.name == "Site A GTV"
    assert info.training["split"]["kind"] == "temporal" and info.training["command"].startswith("mtsa train --data")
    assert info.training["config"]["loss"]["weighting"] == "equal"
    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"), *common]) == EXIT_ERROR
    assert capsys.readouterr().err.startswith("error: ")


def test_ddp_two_cpu_processes(cohort: Path, tmp_path: Path) -> None:
    """torchrun with two gloo processes: one epoch, only rank 0 writes, the checkpoint records both."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "training.train.cli", "--data", str(cohort), "--out", str(tmp_path / "ddp"), "--input-size", "64", "--width", "4",
        "--epochs", "1", "--batch-size", "2", "--workers", "0", "--no-progress", "--device", "cpu", "--val-fraction", "0.25",
        "--cache-dir", str(tmp_path / "ddp_cache"),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines() == [str(tmp_path / "ddp" / "best.pt")]  # rank 0 alone prints
    info = load_checkpoint(tmp_path / "ddp" / "best.pt").info
    assert info.training["world_size"] == 2
    assert len(list(csv.DictReader(open(tmp_path / "ddp" / "log.csv")))) == 1
