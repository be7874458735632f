"""The bundled model is the one ``scripts/train_demo_model.sh`` makes: its second cycle's recorded options and its
fit-head settings are the script's. Why: a model retrained with another flag and bundled without the script (or
the script changed without a retrain) would make the model card's recipe untrue."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from MTSASegmenterLib.model.checkpoint import load_checkpoint
from MTSASegmenterLib.resources import demo_model_path

from training.train import cli, fit_head

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_demo_model.sh"
WHERE = {"data", "init", "out", "device", "workers", "max_minutes", "no_progress"}  # where and how long it ran, not how


def script_args(start: str) -> list[str]:
    """The arguments of the script's command that begins with ``start`` (``mtsa train``, ...), continuation lines
    joined and its variables at the script's defaults (``DEVICE=${DEVICE:-auto}``)."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    defaults = dict(re.findall(r"^(\w+)=\$\{\1:-([^}]*)\}", text, flags=re.MULTILINE))
    line = next(line for line in text.splitlines() if line.strip().startswith(start))
    return shlex.split(re.sub(r"\$(\w+)", lambda m: defaults.get(m[1], m[0]), line))[2:]


def test_the_second_cycle_was_trained_with_the_scripts_options() -> None:
    recorded, script = ({k: v for k, v in vars(cli.build_parser().parse_args(argv)).items() if k not in WHERE}
                        for argv in (shlex.split(load_checkpoint(demo_model_path()).info.training["command"])[2:],
                                     script_args('mtsa train --data "$WORK/tune"')))
    assert recorded == script
    assert recorded["max_slice_mm"] == 3.0  # the grid the card describes


def test_the_filter_was_fitted_with_the_scripts_settings() -> None:
    head = load_checkpoint(demo_model_path()).info.metrics["patient_head"]
    script = fit_head.build_parser().parse_args(script_args("mtsa fit-head"))
    assert head["max_fp_per_patient"] == script.max_fp_per_patient
    assert ("mirror_partner" in head["filter_features"]) == script.mirror_twin
