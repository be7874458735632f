"""Where the module's bundled files live (next to the Slicer module, so Slicer and pip installs agree)."""

from __future__ import annotations

from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[1]
MODELS_DIR = MODULE_DIR / "Resources" / "Models"
DEMO_MODEL_NAME = "mtsa_demo.pt"


def demo_model_path() -> Path:
    return MODELS_DIR / DEMO_MODEL_NAME
