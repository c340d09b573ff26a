#!/usr/bin/env bash
# Issue 17's lever rounds on the full corpus, as measured (CPU, about 4 hours in all).
# Judges use seed 1; nothing they judge does. Every stage is skipped when its output exists.
#   bash recipes/tts_levers.sh [RUNS_DIR]          (default runs/levers)
set -euo pipefail
R=${1:-runs/levers}; D=$R/data; STEPS=${STEPS:-600}
export TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$R"
[ -f $R/full/corpus.json ] || emotive data synth --preset full --out $R/full --workers 2
[ -d $D/emotive_speech ] || emotive data build emotive_speech --src $R/full --out $D
asr() { [ -d $R/$1/checkpoints/600 ] || emotive train asr --preset base --workdir $R/$1 --set data.data_dir=$D train.seed=$2; }
asr asr-judge 1
asr asr-teacher 0
[ -d $R/ser-judge/checkpoints ] || emotive train ser --preset base --workdir $R/ser-judge --set data.data_dir=$D train.seed=1

codec() {  # name, overrides...
  local name=$1; shift
  [ -d $R/$name/checkpoints/1200 ] || emotive train codec --preset tiny --workdir $R/$name \
    --set data.data_dir=$D train.steps=1200 train.eval_every=600 train.ckpt_every=600 "$@"
  [ -f $R/$name/eval-test/report.json ] || emotive eval codec --ckpt $R/$name --data-dir $D \
    --split test --limit 64 --out $R/$name/eval-test
  for split in train validation; do
    [ -d $R/$name/enc/$split ] || emotive codec encode-split --data-dir $D --split $split \
      --ckpt $R/$name --out $R/$name/enc/$split
  done
}
codec codec-64k
codec codec-1k model.fsq_levels=8,5,5,5
codec codec-1k-asr model.fsq_levels=8,5,5,5 semantic.weight=5.0 semantic.teacher_task=asr \
  semantic.teacher_ckpt=$R/asr-teacher

tts() {  # name, codec, overrides...
  local name=$1 c=$2; shift 2
  [ -d $R/$name/checkpoints/$STEPS ] || emotive train tts --preset small --workdir $R/$name --set \
    data.train=$R/$c/enc/train data.eval=$R/$c/enc/validation vocab.codebook_size=1000 \
    train.steps=$STEPS train.eval_every=300 train.ckpt_every=300 "$@"
}
judge() {  # name, codec, text scale
  local out=$R/$1/eval-t$3
  [ -f $out/report.json ] || emotive eval tts --ckpt $R/$1 --codec $R/$2 --asr $R/asr-judge \
    --ser $R/ser-judge --data-dir $D --split test --limit 64 --text-scale $3 --out $out
}
PH="vocab.text_frontend=phoneme data.text_dropout=0.15"
tts tts-bpe codec-1k && judge tts-bpe codec-1k 1
tts tts-ph-cfg codec-1k $PH && judge tts-ph-cfg codec-1k 1 && judge tts-ph-cfg codec-1k 2
tts tts-ph-cfg-asr codec-1k-asr $PH && judge tts-ph-cfg-asr codec-1k-asr 1 \
  && judge tts-ph-cfg-asr codec-1k-asr 2

# Second round (the next session): training length. The phoneme LM on to 2,000 steps (a warm
# restart), and the ASR-teacher codec on to 3,600 steps with a fresh LM on its codes.
T=$R/tts-ph-cfg-asr
[ -d $T/checkpoints/2000 ] || emotive train tts --preset small --workdir $T --resume --set \
  data.train=$R/codec-1k-asr/enc/train data.eval=$R/codec-1k-asr/enc/validation \
  vocab.codebook_size=1000 $PH train.steps=2000 train.eval_every=700 train.ckpt_every=350
[ -f $T/eval-2000-t1/report.json ] || emotive eval tts --ckpt $T --codec $R/codec-1k-asr \
  --asr $R/asr-judge --ser $R/ser-judge --data-dir $D --split test --limit 64 --out $T/eval-2000-t1
[ -f $T/eval-2000-e2/report.json ] || emotive eval tts --ckpt $T --codec $R/codec-1k-asr \
  --asr $R/asr-judge --ser $R/ser-judge --data-dir $D --split test --limit 64 --emotion-scale 2 \
  --out $T/eval-2000-e2
L=$R/codec-1k-asr-long
if [ ! -d $L/checkpoints ]; then mkdir -p $L && cp -r $R/codec-1k-asr/checkpoints $L/; fi
[ -d $L/checkpoints/3600 ] || emotive train codec --preset tiny --workdir $L --resume --set \
  data.data_dir=$D train.steps=3600 train.eval_every=1200 train.ckpt_every=1200 \
  model.fsq_levels=8,5,5,5 semantic.weight=5.0 semantic.teacher_task=asr \
  semantic.teacher_ckpt=$R/asr-teacher
codec codec-1k-asr-long
STEPS=2000 tts tts-long-codec codec-1k-asr-long $PH && judge tts-long-codec codec-1k-asr-long 1
echo "reports: $R/*/eval-*/report.json"
