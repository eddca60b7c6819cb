#!/usr/bin/env bash
# Fine-tune SAMV2 with torchrun: bash scripts/dist_train.sh NPROC --cfg NAME_OR_FILE --work-dir DIR [options]
#   bash scripts/dist_train.sh 8 --cfg samv21_hiera_bplus_davis --work-dir work/davis --train-videos DAVIS/
# One process per GPU (nccl), or CPU processes (gloo). --batch-size is per process: the global batch is
# NPROC x batch size, and gradients are averaged over the processes. Rank 0 writes losses.jsonl, the
# checkpoints and model_final.pt; --resume continues a stopped run.
set -euo pipefail
if [ "$#" -lt 1 ]; then
    echo "usage: bash scripts/dist_train.sh NPROC --cfg NAME --work-dir DIR (--train-videos DIR | --train-ann FILE --train-images DIR) [options]" >&2
    exit 2
fi
NPROC=$1
shift
case "$NPROC" in
    ''|*[!0-9]*|0) echo "dist_train.sh: NPROC must be a positive integer, got '$NPROC'" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python}
# a free port per job, so that two jobs on one machine do not collide
PORT=${MASTER_PORT:-$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
exec "$PYTHON" -m torch.distributed.run --nproc_per_node="$NPROC" --master_addr=127.0.0.1 --master_port="$PORT" \
    -m ssseg.inference train "$@"
