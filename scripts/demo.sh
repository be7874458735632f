#!/usr/bin/env bash
# The README's demo command: set up a fresh machine, then predict one synthetic case.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
mtsa demo "$@"
