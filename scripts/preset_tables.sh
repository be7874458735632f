#!/usr/bin/env bash
# The hcc-tace and breast-dce presets on their own phantoms (docs/PHANTOMS.md), end to end on a
# 2-core CPU in about 80 minutes: per preset a synthetic internal cohort for training and
# validation, an external-site cohort for testing, a 20-minute training run, the component filter
# (mtsa fit-head, a few minutes) and the evaluation
# (heads.md: response AUC and Dice; AUC per receptor and Ki-67 MAE, each beside the best possible).
# Usage: bash scripts/preset_tables.sh [hcc-tace|breast-dce ...]   (default: both)
# Synthetic data only: these models are not for clinical use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
WORK=${WORK:-work/presets}
MINUTES=${MINUTES:-20}

run_preset() {
  local preset=$1 spacing=$2 min_slice=$3
  mtsa synth --preset "$preset" --out "$WORK/$preset/train" --cases 60 --site internal --seed 21
  mtsa synth --preset "$preset" --out "$WORK/$preset/external" --cases 30 --site external --seed 22
  mtsa train --preset "$preset" --data "$WORK/$preset/train" --out "$WORK/$preset/run" --val-fraction 0.15 --test-fraction 0.0 \
    --input-size 128 --width 12 --spacing "$spacing" --min-slice-mm "$min_slice" --batch-size 16 --free-share 0.2 \
    --seed 7 --max-minutes "$MINUTES" --workers 1
  mtsa fit-head --model "$WORK/$preset/run/best.pt" --data "$WORK/$preset/train" --out "$WORK/$preset/run/model.pt"
  mtsa evaluate --data "$WORK/$preset/external" --model "$WORK/$preset/run/model.pt" --out "$WORK/$preset/eval-external"
}

for preset in "${@:-hcc-tace breast-dce}"; do
  case $preset in
    hcc-tace) run_preset hcc-tace 2.8 3.0 ;;    # 358 mm field: the whole abdomen
    breast-dce) run_preset breast-dce 3.0 2.0 ;; # 384 mm field: both breasts
    *) echo "unknown preset $preset (hcc-tace or breast-dce)" >&2; exit 2 ;;
  esac
done
