#!/usr/bin/env bash
# Run image/amg inference over a folder with torchrun: bash scripts/dist_inference.sh NPROC {amg,image} [options]
#   bash scripts/dist_inference.sh 2 amg --cfg samv21_hiera_tiny --image photos/ --outdir out
# Images are sharded across NPROC ranks (one GPU each, or CPU processes with gloo); every result file
# appears atomically, finished images are skipped on a re-run (a killed job resumes), and rank 0
# writes OUTDIR/annotations.json (amg) for the whole folder at the end.
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: bash scripts/dist_inference.sh NPROC {amg,image} --cfg NAME --image FOLDER --outdir DIR [options]" >&2
    exit 2
fi
NPROC=$1
shift
case "$NPROC" in
    ''|*[!0-9]*|0) echo "dist_inference.sh: NPROC must be a positive integer, got '$NPROC'" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python}
# a free port per job, so that two jobs on one machine do not collide
PORT=${MASTER_PORT:-$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
exec "$PYTHON" -m torch.distributed.run --nproc_per_node="$NPROC" --master_addr=127.0.0.1 --master_port="$PORT" \
    -m ssseg.inference "$@"
