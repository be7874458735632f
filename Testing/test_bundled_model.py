"""The bundled model is the one ``scripts/train_demo_model.sh`` makes: its second cycle's recorded options and its
fit-head settings are the script's. Why: a model retrained with another flag and bundled without the script (or
the script changed without a retrain) would make the model card's recipe untrue."""

from __future__ import annotations

import shlex
from pathlib import Path

from MTSASegmenterLib.model.checkpoint import load_checkpoint
from MTSASegmenterLib.resources import demo_model_path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_demo_model.sh"
WHERE = {"--data", "--init", "--out", "--device", "--workers", "--max-minutes", "--no-progress"}  # where it ran, not how


def script_command(start: str) -> list[str]:
    """The script's command that begins with ``start``, its continuation lines joined."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.strip().startswith(start))
    return shlex.split(line)


def options(argv: list[str]) -> dict[str, tuple[str, ...]]:
    """``--name value...`` pairs of a command line (a flag without a value maps to ``()``)."""
    found: dict[str, tuple[str, ...]] = {}
    name = None
    for word in argv:
        if word.startswith("--"):
            name = word
            found[name] = ()
        elif name is not None:
            found[name] += (word,)
    return found


def test_the_second_cycle_was_trained_with_the_scripts_options() -> None:
    recorded = options(shlex.split(load_checkpoint(demo_model_path()).info.training["command"]))
    script = options(script_command('mtsa train --data "$WORK/tune"'))
    assert {k: v for k, v in recorded.items() if k not in WHERE} == {k: v for k, v in script.items() if k not in WHERE}
    assert recorded["--max-slice-mm"] == ("3",)  # the grid the card describes


def test_the_filter_was_fitted_with_the_scripts_settings() -> None:
    head = load_checkpoint(demo_model_path()).info.metrics["patient_head"]
    script = options(script_command("mtsa fit-head"))
    assert head["max_fp_per_patient"] == float(script["--max-fp-per-patient"][0])  # the script names it, not a default
    assert ("mirror_partner" in head["filter_features"]) == ("--mirror-twin" in script)
