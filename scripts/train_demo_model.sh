#!/usr/bin/env bash
# Reproduce the bundled demo model (MTSASegmenter/Resources/Models/mtsa_demo.pt) from nothing:
# a synthetic cohort (6 min), training on a 2-core CPU within a 40-minute budget, the component
# filter and patient-level EGFR model (mtsa fit-head, 3 min), then its evaluation on held-out
# internal patients and an external-site synthetic cohort (10 min more).
# The weights depend on the trainer's code too: the bundled model was trained at commit 4a0b7a4
# (its info.code_version); run this script from that commit to get the same weights.
# Synthetic data only: the model is not for clinical use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
WORK=${WORK:-work/demo-model}

mtsa synth --out "$WORK/train" --cases 140 --site internal --seed 11 --domain-randomisation 0.5 --skull-stripped 0.4 \
  --thick-slices 0.5 --large-cysts 0.15
mtsa train --data "$WORK/train" --out "$WORK/run" --split random --val-fraction 0.1 --test-fraction 0.1 \
  --input-size 160 --width 12 --spacing 1.5 --min-slice-mm 2.0 --batch-size 16 --free-share 0.35 \
  --seed 7 --max-minutes 40 --workers 1
mtsa fit-head --model "$WORK/run/best.pt" --data "$WORK/train" --out "$WORK/run/model.pt"
cp "$WORK/run/model.pt" MTSASegmenter/Resources/Models/mtsa_demo.pt
mtsa synth --out "$WORK/external" --cases 40 --site external --seed 99
mtsa evaluate --data "$WORK/train" --model "$WORK/run/model.pt" --out "$WORK/eval-internal"
mtsa evaluate --data "$WORK/external" --model "$WORK/run/model.pt" --out "$WORK/eval-external"
