#!/usr/bin/env bash
# The GPU check: versions, the CUDA parity tests, then the GPU benchmark table; logs and table go to OUTDIR.
#   bash scripts/gpu_check.sh [--dry-run] [OUTDIR]      (default OUTDIR: ./gpu_check_out)
# --dry-run runs the same steps on the CPU (SSSEG_PARITY_DEVICE=cpu, benchmark_gpu.py --dry-run), in minutes.
# Installs nothing: needs the README's install (ssseg, sam2==1.1.0, pytest). PYTHON picks the interpreter;
# BENCH_ARGS_EXTRA adds benchmark options (e.g. "--row-timeout-s 120 --configs samv21_hiera_tiny").
# Exits non-zero when the parity tests fail (the benchmark still runs) or the benchmark fails.
set -euo pipefail

DRY_RUN=0
OUTDIR=./gpu_check_out
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        -*) echo "unknown option: $arg" >&2; exit 2 ;;
        *) OUTDIR=$arg ;;
    esac
done
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)  # absolute, since the steps run from the repository root
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
command -v "$PYTHON" >/dev/null || PYTHON=python3
TOTAL_S=470  # the whole check stays under 8 minutes: the benchmark gets what the earlier steps left
START=$SECONDS

echo "== environment ($(date -Is), dry run: $DRY_RUN)" | tee "$OUTDIR/env.log"
if command -v nvidia-smi >/dev/null; then
    timeout 30 nvidia-smi 2>&1 | tee -a "$OUTDIR/env.log" || true
else
    echo "nvidia-smi: not found" | tee -a "$OUTDIR/env.log"
fi
timeout 60 "$PYTHON" -c "
import sys, torch
from importlib.metadata import version
cuda = torch.cuda.is_available()
print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda,
      '| cuDNN', torch.backends.cudnn.version() if cuda else None, '| sam2', version('sam2'), '| ssseg', version('ssseg'))
print('GPU:', torch.cuda.get_device_name(0) if cuda else 'none visible to torch')
" 2>&1 | tee -a "$OUTDIR/env.log" || true

echo "== parity tests (timeout 150 s)" | tee "$OUTDIR/parity.log"
if [ "$DRY_RUN" = 1 ]; then
    export SSSEG_PARITY_DEVICE=cpu
fi
set +e
timeout -k 10 150 "$PYTHON" -m pytest -q -p no:cacheprovider tests/parity/test_cuda_parity.py 2>&1 \
    | tee -a "$OUTDIR/parity.log"
PARITY_RC=${PIPESTATUS[0]}
set -e
echo "parity exit status: $PARITY_RC ($((SECONDS - START)) s so far)" | tee -a "$OUTDIR/parity.log"

LEFT=$((TOTAL_S - (SECONDS - START)))
BENCH_S=$((LEFT < 420 ? LEFT : 420))
BENCH_S=$((BENCH_S > 90 ? BENCH_S : 90))
BENCH_ARGS=(--out "$OUTDIR/gpu_table.md")
if [ "$DRY_RUN" = 1 ]; then
    BENCH_ARGS+=(--dry-run)
else
    # rows stop 40 s before the step's timeout, leaving time to write the table
    BENCH_ARGS+=(--budget-s $((BENCH_S - 40)))
fi
read -r -a EXTRA <<< "${BENCH_ARGS_EXTRA:-}"
BENCH_ARGS+=("${EXTRA[@]}")
echo "== benchmark (timeout $BENCH_S s): benchmark_gpu.py ${BENCH_ARGS[*]}" | tee "$OUTDIR/benchmark.log"
set +e
timeout -k 15 "$BENCH_S" "$PYTHON" scripts/benchmark_gpu.py "${BENCH_ARGS[@]}" 2>&1 | tee -a "$OUTDIR/benchmark.log"
BENCH_RC=${PIPESTATUS[0]}
set -e

{
    echo "parity tests: $([ "$PARITY_RC" = 0 ] && echo passed || echo "FAILED (exit $PARITY_RC)")"
    echo "benchmark: exit $BENCH_RC; table: $OUTDIR/gpu_table.md $([ -f "$OUTDIR/gpu_table.md" ] || echo '(missing)')"
    echo "total: $((SECONDS - START)) s"
} | tee "$OUTDIR/summary.txt"
if [ "$PARITY_RC" != 0 ]; then
    exit "$PARITY_RC"
fi
exit "$BENCH_RC"
