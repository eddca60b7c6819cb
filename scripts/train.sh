#!/usr/bin/env bash
# Fine-tune SAMV2 in one process: bash scripts/train.sh --cfg NAME_OR_FILE --work-dir DIR [options]
#   bash scripts/train.sh --cfg samv21_hiera_tiny_davis --work-dir work/davis --train-videos DAVIS/ --max-iters 2000
#   bash scripts/train.sh --cfg samv21_hiera_tiny_coco --work-dir work/coco --train-ann ann.json --train-images images/
# Continue a stopped run with --resume (same --work-dir). Options: python -m ssseg.inference train --help
set -euo pipefail
PYTHON=${PYTHON:-python}
exec "$PYTHON" -m ssseg.inference train "$@"
