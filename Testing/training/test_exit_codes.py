"""One exit-code rule (``errors.run_command``) for every training-side command, as for ``mtsa``: bad
input (or an inconsistent configuration) is one ``error:`` line and EXIT_ERROR, Ctrl-C is
EXIT_INTERRUPTED; also when a command runs on its own (``python -m ...``, torchrun), not only under ``mtsa``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from MTSASegmenterLib.errors import EXIT_ERROR, EXIT_INTERRUPTED

from training import demo
from training.evaluation import cli as evaluate_cli
from training.train import ablations, fit_head
from training.train import cli as train_cli


def _bad_inputs(tmp: Path) -> dict[str, tuple]:
    """(main, argv, what the error line says) per command: real bad input, nothing patched."""
    nowhere = str(tmp / "nowhere")
    return {
        "train": (train_cli.main, ["--data", nowhere, "--out", str(tmp / "o")], "no cases.csv"),
        "train-config": (train_cli.main, ["--data", nowhere, "--out", str(tmp / "o"), "--epochs", "0"],
                         "configuration: epochs, patience and batch_size must be positive"),
        "evaluate": (evaluate_cli.main, ["--data", nowhere, "--model", "m.pt", "--out", str(tmp / "o")], "no cases.csv"),
        "ablations": (ablations.main, ["--data", nowhere, "--out", str(tmp / "o"), "--only", "unet"], "unknown variant"),
        "fit-head": (fit_head.main, ["--data", nowhere, "--model", str(tmp / "m.pt"), "--out", str(tmp / "o.pt")], "m.pt"),
        "demo": (demo.main, ["--out", str(tmp / "o"), "--model", str(tmp / "missing.pt")], "missing.pt"),
    }


@pytest.mark.parametrize("command", ["train", "train-config", "evaluate", "ablations", "fit-head", "demo"])
def test_bad_input_is_one_error_line_and_exit_error(command: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main, argv, says = _bad_inputs(tmp_path)[command]
    assert main(argv) == EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err


# Where each command's work starts: replaced by a function that raises what Ctrl-C raises there.
INTERRUPTED_AT = {
    "train": (train_cli, "train", train_cli.main, ["--data", "d", "--out", "o"]),
    "evaluate": (evaluate_cli, "load_checkpoint", evaluate_cli.main, ["--data", "{cohort}", "--model", "m.pt", "--out", "o"]),
    "ablations": (ablations, "run_ablations", ablations.main, ["--data", "d", "--out", "o"]),
    "fit-head": (fit_head, "load_checkpoint", fit_head.main, ["--data", "d", "--model", "m.pt", "--out", "o.pt"]),
    "demo": (demo, "load_checkpoint", demo.main, ["--out", "{tmp}/o"]),
}


@pytest.mark.parametrize("command", sorted(INTERRUPTED_AT))
def test_ctrl_c_exits_interrupted(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    module, name, main, argv = INTERRUPTED_AT[command]
    (tmp_path / "cohort").mkdir()
    (tmp_path / "cohort" / "cases.csv").write_text("case_id,image,mask,site,acquired\n")

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, name, ctrl_c)
    monkeypatch.chdir(tmp_path)
    assert main([a.format(cohort=tmp_path / "cohort", tmp=tmp_path) for a in argv]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: interrupted"), err


def test_a_command_run_on_its_own_keeps_the_rule(tmp_path: Path) -> None:
    """``python -m training.train.cli`` (what torchrun starts) exits as ``mtsa train`` would."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run([sys.executable, "-m", "training.train.cli", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_ERROR and result.stderr.startswith("error: ") and not result.stdout
