#!/usr/bin/env bash
# One row of the raw-text parsing table (docs/BENCHMARKS.md, "Distilling on raw text at scale"):
#   benchmarks/raw_text_parsing.sh ROW SEED OUT_DIR
# ROW: none | structural | structural-10k | structural-50k | structural-all | token-all | top_k-all
#      | none-long: the gold-only student without early stopping for EPOCHS epochs (default 106:
#        114 updates an epoch, as many updates as structural-all's 12,084 with seed 1)
# Needs TEACHER (a biaffine_minilm model.tar.gz) and the shared data beside the repository.
# Every row trains the same small biaffine student until dev LAS has not risen for 5 epochs.
set -euo pipefail
row=$1 seed=$2 out=$3
D=${DATA:-../shared/data}
export TRAIN_PATH=$D/UD_English-EWT/en_ewt-ud-train.conllu DEV_PATH=$D/UD_English-EWT/en_ewt-ud-dev.conllu \
  TEST_PATH=$D/UD_English-EWT/en_ewt-ud-test.conllu STUDENT=biaffine TEACHER=${TEACHER:?set TEACHER}
# Raw text in order of closeness to EWT's genres: MASC (blogs, email, spoken), other UD treebanks,
# Wikipedia, review phrases.
U=$D/unlabeled/en
export UNLABELED_PATH=$U/masc.txt,$U/ud_other_treebanks.txt,$U/wikipedia.txt,$U/pros_cons.txt
overrides="{\"random_seed\": $seed, \"trainer\": {\"num_epochs\": 60, \"patience\": 5}}"
case $row in
  none|structural) config=training_configs/distill/parsing/$row.jsonnet ;;
  none-long)
    config=training_configs/distill/parsing/none.jsonnet
    overrides="{\"random_seed\": $seed, \"trainer\": {\"num_epochs\": ${EPOCHS:-106}, \"patience\": null}}" ;;
  *-10k) export MAX_UNLABELED=10000 ;;
  *-50k) export MAX_UNLABELED=50000 ;;
  *-all) export MAX_UNLABELED=0 ;;
esac
case $row in
  structural-*) config=training_configs/distill/parsing/raw_text.jsonnet ;;
  token-all|top_k-all)
    config=training_configs/distill/parsing/raw_text.jsonnet
    objective="{\"type\": \"${row%-all}\"}"
    [ "$row" = top_k-all ] && objective="{\"type\": \"top_k\", \"k\": 1}"
    overrides="{\"random_seed\": $seed, \"model\": {\"objective\": $objective}, \"trainer\": {\"num_epochs\": 60, \"patience\": 5}}" ;;
esac
exec structkd train "$config" -s "$out" --overrides "$overrides"
