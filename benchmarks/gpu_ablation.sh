#!/usr/bin/env bash
# Ablations of QAMT (section 4.3: CLS / REG / CLS+REG pre-training and FT) and HCL (without each
# curriculum) on the embedded `mixed` set (authentic-like blends), one split, about 6 minutes on an
# H100. Pre-training data: the embedded `synthetic` set with the target's held-out contents
# removed (QAMT's 39-class task; HCL's C1 restoration pairs; HCL's C2 databases synthetic + mixed).
# Pre-training stages run their `paper` settings; the fine-tuning on the target is cut to fit
# the device time (QAMT: 3 epochs of 10 crops per image instead of 10 x 100; HCL C3: 4 epochs of
# 5 crops instead of 16 x 25). No ImageNet weights on that machine: every network starts from
# random weights, so FT is training from scratch. These are not the papers' datasets or settings.
# Usage (repository root): bash benchmarks/gpu_ablation.sh      TINY=1 bash benchmarks/gpu_ablation.sh
source "$(dirname "$0")/gpu_common.sh"
machine_info
RESULTS=/tmp/biqa-ablation
START=$(date +%s)
left() { local s=$(( ${BUDGET:-400} - ($(date +%s) - START) )); [ $s -gt 150 ] && s=150; [ $s -gt 5 ] && echo $s || echo 5; }
if [ "$TINY" = 1 ]; then
    TARGET=mixed:contents=4; QAMT="--recipe quick"; HCL="--recipe quick"
else
    TARGET=mixed; QAMT="--recipe paper -p epochs=3 -p crops_per_image=10"; HCL="--recipe paper -p epochs=4 -p crops_per_image=5"
fi
COMMON="--pretrained none --device $DEVICE --repeats 1"
step build-embedded 120 "biqa datasets cache synthetic --size original && biqa datasets cache mixed --size original"
for task in cls+reg cls reg none; do
    step "qamt-$task" $(left) biqa train --method qamt --dataset $TARGET $QAMT -p pretrain_data=synthetic -p pretrain_task=$task $COMMON -o $RESULTS/qamt-${task/+/_}
done
for ablation in none no_c1 no_c2 no_c3; do
    step "hcl-$ablation" $(left) biqa train --method hcl --dataset $TARGET $HCL -p ablation=$ablation $COMMON -o $RESULTS/hcl-$ablation
done
python3 benchmarks/summarize_runs.py $RESULTS "$BIQA_CACHE/pretrain" > "$OUT/summary_ablation.md" 2>>"$LOG"
cat "$OUT/summary_ablation.md"
pack_runs runs_ablation.tar.gz $RESULTS "$BIQA_CACHE/pretrain"
cat "$STEPS"
