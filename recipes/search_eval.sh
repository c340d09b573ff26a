#!/usr/bin/env bash
# Issue 18's figures: verifier-guided search on the TTS of recipes/tts_levers.sh, judged by
# held-out models. Verifiers: an SER model with seed 2 and the ASR teacher (seed 0); judges:
# the seed-1 ASR and SER of the lever round (no search or training used them).
#   bash recipes/search_eval.sh [RUNS_DIR]          (default runs/levers; run tts_levers.sh first)
set -euo pipefail
R=${1:-runs/levers}; D=$R/data
export TF_CPP_MIN_LOG_LEVEL=2
TTS=$R/tts-ph-cfg-asr; CODEC=$R/codec-1k-asr
# The lever round's LM, trained on to 2,000 steps (a warm restart of its cosine schedule).
[ -d $TTS/checkpoints/2000 ] || emotive train tts --preset small --workdir $TTS --resume --set \
  data.train=$CODEC/enc/train data.eval=$CODEC/enc/validation vocab.codebook_size=1000 \
  vocab.text_frontend=phoneme data.text_dropout=0.15 train.steps=2000 train.eval_every=700 \
  train.ckpt_every=350
[ -d $R/ser-verifier/checkpoints ] || emotive train ser --preset base --workdir $R/ser-verifier \
  --set data.data_dir=$D train.seed=2
V="--verifier emotion=$R/ser-verifier --verifier intelligibility=$R/asr-teacher"
J="--judge-asr $R/asr-judge --judge-ser $R/ser-judge"
COMMON="--ckpt $TTS --codec $CODEC --data-dir $D --split test --limit 64 $J"
# Emotion verifier alone: best-of-N over budgets 1..32 and PRM-then-ORM and PRM-only beams at 1, 4 and 16.
emotive eval search $COMMON --verifier emotion=$R/ser-verifier --strategies best_of_n \
  --budgets 1,2,4,8,16,32 --out $R/search-emotion
emotive eval search $COMMON --verifier emotion=$R/ser-verifier --strategies prm_orm,beam \
  --budgets 1,4,16 --out $R/search-emotion-beam
# Emotion and intelligibility together.
emotive eval search $COMMON $V --strategies best_of_n --budgets 1,4,16 --out $R/search-both
echo "reports: $R/search-*/report.json"
