# Shared set-up of the GPU benchmark scripts (sourced by gpu_deep.sh and gpu_pretrain.sh).
#
# Runs from the repository root on a machine where torch, timm, scipy, pandas, typer, rich and
# scikit-image are installed; other wheels (piq) may be carried in .whl/. Every step's output goes
# to $OUT/log.txt; a failing or timed-out step is recorded and the script goes on.
# TINY=1 runs every step at toy sizes on the CPU (a check of the script itself).
# ONLY="name name ..." runs only the named steps (with the steps they need, which you name too),
# e.g. ONLY="make-pristine synth-5k cache-5k epoch-resnet50" BUDGET=560 bash benchmarks/gpu_deep.sh

set -u
OUT=${OUT:-/tmp/biqa-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=$PWD:/tmp/site
else
    export PYTHONPATH=$PWD
fi
export BIQA_CACHE=${BIQA_CACHE:-/tmp/biqa-cache}
export BIQA_CONFIG=$BIQA_CACHE/config.toml
mkdir -p "$BIQA_CACHE"
TINY=${TINY:-0}
if [ "$TINY" = 1 ]; then DEVICE=cpu; WORKERS=2; else DEVICE=cuda; WORKERS=$(nproc); fi
LOG=$OUT/log.txt
STEPS=$OUT/steps.tsv

biqa() { python3 -m biqa_bench -v "$@"; }

# step NAME TIMEOUT_S COMMAND...: run with a time limit, log its output, record rc and seconds.
step() {
    local name=$1 limit=$2
    shift 2
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then
        echo "=== $name skipped (not in ONLY)" >>"$LOG"
        return 0
    fi
    echo "=== $name ($(date -u +%T), limit ${limit}s): $*" | tee -a "$LOG"
    local started=$(date +%s.%N)
    timeout --kill-after=10 "$limit" bash -c "$(declare -f biqa); $*" >>"$LOG" 2>&1
    local rc=$?
    local seconds=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
    printf '%s\t%s\t%s\n' "$name" "$rc" "$seconds" | tee -a "$STEPS" | tee -a "$LOG"
    tail -n 3 "$LOG" | grep -v "^=== \|^$name\t" || true
}

machine_info() {
    {
        echo "date: $(date -u +%FT%TZ)"
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
        echo "cpus: $(nproc)"
        python3 -c "import torch, timm, numpy, PIL; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, 'numpy', numpy.__version__, 'pillow', PIL.__version__)"
    } | tee -a "$LOG"
}

# Pack the run records (manifests, histories, pre-training stage manifests) into $OUT.
pack_runs() {
    local tarball=$1
    shift
    (find "$@" -name manifest.json -o -name config.json -o -name predictions.csv -o -name labels.csv -o -name '*.json' -path '*splits*' 2>/dev/null) \
        | grep -v '/images/' | tar czf "$OUT/$tarball" -T - 2>/dev/null
    ls -la "$OUT/$tarball" | tee -a "$LOG"
}
