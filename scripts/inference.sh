#!/usr/bin/env bash
# Run ssseg's command-line inference: bash scripts/inference.sh {image,amg,video} [options]
#   bash scripts/inference.sh image --cfg samv21_hiera_tiny --image truck.jpg --point 500,375 --outdir out
# Options: python -m ssseg.inference {image,amg,video} --help
set -euo pipefail
PYTHON=${PYTHON:-python}
exec "$PYTHON" -m ssseg.inference "$@"
