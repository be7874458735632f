#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv: the package with its test extras.
# Where a CPU build of torch 2.13.0 lies on this machine's disk it is installed first, so that pip
# does not pull a multi-GB CUDA build; elsewhere pip picks the torch that suits the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
if ls /opt/wheels/torch-2.13.0+cpu-* >/dev/null 2>&1 && ! python -c "import torch" >/dev/null 2>&1; then
  python -m pip install --quiet torch==2.13.0
fi
python -m pip install --quiet -e ".[test]"
# The unrelated PyPI package 'slicer' also imports as 'slicer' and would shadow slicer-core's MRML.
if python -m pip show slicer >/dev/null 2>&1; then python -m pip uninstall --yes --quiet slicer; fi
