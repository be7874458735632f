#!/usr/bin/env bash
# Reproduce the bundled demo model (MTSASegmenter/Resources/Models/mtsa_demo.pt) from nothing:
# a synthetic cohort, training on a 2-core CPU within a 50-minute budget, and its evaluation on an
# external-site synthetic cohort. Synthetic data only: the model is not for clinical use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
WORK=${WORK:-work/demo-model}

mtsa synth --out "$WORK/train" --cases 160 --site internal --seed 11 --domain-randomisation 0.5 --skull-stripped 0.4
mtsa synth --out "$WORK/external" --cases 40 --site external --seed 99
mtsa train --data "$WORK/train" --out "$WORK/run" --split random --val-fraction 0.1 --test-fraction 0.1 \
  --input-size 160 --width 12 --spacing 1.5 --min-slice-mm 2.0 --batch-size 16 --free-share 0.25 \
  --seed 7 --max-minutes 50 --workers 1
mtsa evaluate --data "$WORK/train" --model "$WORK/run/best.pt" --out "$WORK/eval-internal"
mtsa evaluate --data "$WORK/external" --model "$WORK/run/best.pt" --out "$WORK/eval-external"
cp "$WORK/run/best.pt" MTSASegmenter/Resources/Models/mtsa_demo.pt
