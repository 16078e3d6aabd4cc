#!/usr/bin/env bash
# GPU check of the pre-training methods (issue: QAMT and HCL) and the ResNet-50 paper epoch of
# the deep-methods issue, one call of about 9 minutes on an H100:
#   1. 715 pristine crops (benchmarks/make_pristine.py) -> `biqa datasets synth --kind authentic`:
#      715 x 28 = 20,020 authentic-like blends with 26-way labels and pseudo-MOS, generated in the
#      background on most CPU cores while the GPU runs
#   2. HCL, `paper` recipe, all three curricula on the embedded sets (C1 restoration on `synthetic`,
#      C2 on `synthetic` + `mixed`, C3 on the target `mixed`), one split;
#   3. QAMT stage 1 for one epoch on the 20,020 blends (multi-label, N = 26), then stage 2 on the
#      embedded `synthetic` set (`paper` recipe, one epoch of 100 crops per image, 60 test crops);
#   4. one `paper`-recipe epoch of resnet50 on a 5,040-image subset of the blends (180 sources);
#   5. HCL again with curriculum 1 on the 20,020 blends (one epoch), for C1's throughput at scale.
# No ImageNet weights on that machine: every model starts from random weights (throughput does
# not depend on them; accuracy figures from these runs say nothing about the papers').
# Usage (repository root): bash benchmarks/gpu_pretrain.sh      TINY=1 bash benchmarks/gpu_pretrain.sh
source "$(dirname "$0")/gpu_common.sh"
machine_info
START=$(date +%s)
left() { local s=$(( ${BUDGET:-545} - ($(date +%s) - START) )); [ $s -gt 5 ] && echo $s || echo 5; }
RESULTS=/tmp/biqa-results-pretrain
if [ "$TINY" = 1 ]; then
    N_PRISTINE=8; N_SUBSET=4; PER_IMAGE="--per-image 3"; SYNTH_WORKERS=1; RECIPE="--recipe quick"; EPOCH="--recipe quick"
    TARGET_S=synthetic:contents=3; TARGET_A=mixed:contents=3
else
    N_PRISTINE=715; N_SUBSET=180; PER_IMAGE=""; SYNTH_WORKERS=13; RECIPE="--recipe paper"; EPOCH="--recipe paper -p epochs=1"
    TARGET_S=synthetic; TARGET_A=mixed
fi
COMMON="--pretrained none --device $DEVICE --repeats 1 --only 0"

step make-pristine 120 python3 benchmarks/make_pristine.py --n $N_PRISTINE --out /tmp/pristine20k
echo "=== synth-20k in the background ($(date -u +%T)), $SYNTH_WORKERS workers" | tee -a "$LOG"
SYNTH_START=$(date +%s)
(python3 -m biqa_bench datasets synth --images /tmp/pristine20k --name gen20k --kind authentic --workers $SYNTH_WORKERS $PER_IMAGE \
    > "$OUT/synth20k.log" 2>&1; echo $? > /tmp/synth20k.rc; date +%s > /tmp/synth20k.end) &
SYNTH_PID=$!

step hcl-paper $(left) biqa train --method hcl --dataset $TARGET_A $RECIPE $COMMON -o $RESULTS
wait $SYNTH_PID
printf 'synth-20k\t%s\t%s\n' "$(cat /tmp/synth20k.rc)" "$(( $(cat /tmp/synth20k.end) - SYNTH_START ))" | tee -a "$STEPS" | tee -a "$LOG"
tail -n 2 "$OUT/synth20k.log" | tee -a "$LOG"
cp "$BIQA_CACHE/synth/gen20k/manifest.json" "$OUT/synth20k_manifest.json" 2>/dev/null

step qamt-20k $(left) biqa train --method qamt --dataset $TARGET_S $EPOCH -p pretrain_data=gen20k -p pretrain_epochs=1 $COMMON -o $RESULTS
step subset-5k 60 "python3 -c \"import pandas as pd; t = pd.read_csv('$BIQA_CACHE/synth/gen20k/labels.csv'); keep = sorted(t['content'].unique())[:$N_SUBSET]; t[t['content'].isin(keep)].to_csv('/tmp/gen5k.csv', index=False); print(len(t), 'rows,', t['content'].isin(keep).sum(), 'kept')\" && biqa datasets add gen5k --csv /tmp/gen5k.csv --root $BIQA_CACHE/synth/gen20k --score-range 0 100 --content-column content && biqa datasets cache gen5k --size original --workers $WORKERS"
step epoch-resnet50 $(left) biqa train --method resnet50 --dataset gen5k $EPOCH --image-cache original --workers $WORKERS $COMMON -o $RESULTS
step hcl-c1-20k $(left) biqa train --method hcl --dataset $TARGET_A $EPOCH -p restoration_data=gen20k -p c1_epochs=1 $COMMON -o $RESULTS-c1

python3 benchmarks/summarize_runs.py $RESULTS $RESULTS-c1 "$BIQA_CACHE/pretrain" > "$OUT/summary.md" 2>>"$LOG"
cat "$OUT/summary.md"
pack_runs runs_pretrain.tar.gz $RESULTS $RESULTS-c1 "$BIQA_CACHE/pretrain"
cat "$STEPS"
