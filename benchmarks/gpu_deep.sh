#!/usr/bin/env bash
# GPU check of the deep methods (issue: deep methods), one call of about 9 minutes on an H100:
#   1. the `quick` recipes of qamt and hcl through `biqa train --device cuda` (their CUDA path,
#      before gpu_pretrain.sh runs them at scale);
#   2. benchmarks/bench_train.py at 224 x 224: images/s through the data pipeline and on random
#      tensors already on the GPU, inference, peak memory;
#   3. a generated set of >= 5,000 images (benchmarks/make_pristine.py + `biqa datasets synth`);
#   4. one `paper`-recipe epoch of reqa, ieit and resnet50 on it (one split, no ImageNet weights
#      here: throughput does not depend on them);
#   5. HCL (one epoch per curriculum) and the resnet50 epoch again with `-p cuda_graphs=true`.
# Usage (repository root): bash benchmarks/gpu_deep.sh        TINY=1 bash benchmarks/gpu_deep.sh
source "$(dirname "$0")/gpu_common.sh"
machine_info
RESULTS=/tmp/biqa-results-deep
if [ "$TINY" = 1 ]; then
    SMOKE_DATA=synthetic:contents=3; BENCH="--crop 64 --image-size 80 --images 40 --steps 2 --batch-size 10 --infer-images 16"
    PRISTINE=3; PER_IMAGE="--per-image 5"; EPOCH="--recipe quick"
    HCL_DATA=mixed:contents=3; HCL_EPOCHS="--recipe quick"
else
    SMOKE_DATA=synthetic:contents=3; BENCH="--crop 224 --image-size 256 --images 2048 --steps 30 --warmup 5 --batch-size 256 --infer-images 2048 --infer-batch 256"
    PRISTINE=130; PER_IMAGE=""; EPOCH="--recipe paper -p epochs=1"
    HCL_DATA=mixed; HCL_EPOCHS="--recipe paper -p epochs=1 -p c1_epochs=1 -p c2_epochs=1"
fi

START=$(date +%s)
left() { local s=$(( ${BUDGET:-540} - ($(date +%s) - START) )); [ $s -gt 5 ] && echo $s || echo 5; }
for m in qamt hcl; do  # resnet50, reqa and ieit run on CUDA below; these two run in gpu_pretrain.sh
    step "smoke-$m" 120 biqa train --method $m --dataset $SMOKE_DATA --recipe quick --pretrained none --device $DEVICE --repeats 1 -o /tmp/biqa-smoke
done
step bench-train-256 240 python3 benchmarks/bench_train.py --device $DEVICE $BENCH
step make-pristine 60 python3 benchmarks/make_pristine.py --n $PRISTINE --out /tmp/pristine5k
step synth-5k 150 biqa datasets synth --images /tmp/pristine5k --name gen5k --kind synthetic --workers $WORKERS $PER_IMAGE
step cache-5k 60 biqa datasets cache gen5k --size original --workers $WORKERS
step epoch-reqa 150 biqa train --method reqa --dataset gen5k $EPOCH --pretrained none --device $DEVICE --repeats 1 --image-cache original --workers $WORKERS -o $RESULTS
step epoch-ieit 200 biqa train --method ieit --dataset gen5k $EPOCH -p selection=always --pretrained none --device $DEVICE --repeats 1 --image-cache original --workers $WORKERS -o $RESULTS
step epoch-resnet50 $(left) biqa train --method resnet50 --dataset gen5k $EPOCH --pretrained none --device $DEVICE --repeats 1 --image-cache original --workers $WORKERS -o $RESULTS
# the same epoch and HCL's three curricula (one epoch each) with train_l1's steps replayed from CUDA graphs
step hcl-graphs 240 biqa train --method hcl --dataset $HCL_DATA $HCL_EPOCHS -p cuda_graphs=true --pretrained none --device $DEVICE --repeats 1 -o $RESULTS-graphs
step epoch-resnet50-graphs $(left) biqa train --method resnet50 --dataset gen5k $EPOCH -p cuda_graphs=true --pretrained none --device $DEVICE --repeats 1 --image-cache original --workers $WORKERS -o $RESULTS-graphs
python3 benchmarks/summarize_runs.py $RESULTS $RESULTS-graphs /tmp/biqa-smoke > "$OUT/summary.md" 2>>"$LOG"
cat "$OUT/summary.md"
cp "$BIQA_CACHE/synth/gen5k/manifest.json" "$OUT/synth5k_manifest.json" 2>/dev/null
pack_runs runs_deep.tar.gz $RESULTS $RESULTS-graphs /tmp/biqa-smoke
cat "$STEPS"
