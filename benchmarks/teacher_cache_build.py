"""Throughput of a teacher-cache build: sentences labeled per second by the teacher of the raw-text
recipe (`training_configs/distill/parsing/raw_text.jsonnet`), in one process or under torchrun.

The script reads the first `--sentences` raw sentences the recipe would read, builds the
distillation model (teacher and student, the student's vocabulary from the gold training file),
and times `prepare_for_training` on them alone into a fresh cache directory. Under torchrun every
rank labels its share of the shards and rank 0 reports the time from the start to the finished
index:

    TEACHER=runs/minilm-teacher/model.tar.gz OMP_NUM_THREADS=2 python benchmarks/teacher_cache_build.py --sentences 6000
    TEACHER=runs/minilm-teacher/model.tar.gz OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 \
        benchmarks/teacher_cache_build.py --sentences 6000
"""

import argparse
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
import torch.distributed as dist

from structkd_plugin.config import import_structkd_registrations, load_config
from structkd_plugin.data import DatasetReader, Vocabulary
from structkd_plugin.data.sentence_store import SentenceStore
from structkd_plugin.models.model import Model

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=6000, help="Raw sentences to label.")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--shard-size", type=int, default=1000, help="Sentences per shard (the unit ranks share).")
    args = parser.parse_args()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)

    ewt, text = Path(args.data_dir) / "UD_English-EWT", Path(args.data_dir) / "unlabeled" / "en"
    os.environ.update(
        TRAIN_PATH=str(ewt / "en_ewt-ud-train.conllu"),
        DEV_PATH=str(ewt / "en_ewt-ud-dev.conllu"),
        TEST_PATH=str(ewt / "en_ewt-ud-test.conllu"),
        UNLABELED_PATH=",".join(str(text / name) for name in ("masc.txt", "ud_other_treebanks.txt", "wikipedia.txt")),
        MAX_UNLABELED=str(args.sentences),
        STUDENT="biaffine",
    )
    import_structkd_registrations()
    config = load_config(ROOT / "training_configs" / "distill" / "parsing" / "raw_text.jsonnet")
    raw_text = SentenceStore(DatasetReader.from_params(config.pop("unlabeled_dataset_reader")).read(config.pop("unlabeled_data_path")))
    gold = list(DatasetReader.from_params(config.pop("dataset_reader")).read(config.pop("train_data_path")))
    vocab = Vocabulary.from_instances(gold)
    with tempfile.TemporaryDirectory() as cache_dir:
        model_params = config.pop("model")
        shared = [cache_dir]
        if dist.is_initialized():  # every rank writes into rank 0's fresh directory
            dist.broadcast_object_list(shared, src=0)
        model_params["teacher_cache"]["directory"] = shared[0]
        model_params["teacher_cache"]["shard_size"] = args.shard_size
        model = Model.from_params(model_params, vocab=vocab)
        if dist.is_initialized():
            dist.barrier()
        started = time.perf_counter()
        model.prepare_for_training({"unlabeled": raw_text})
        seconds = time.perf_counter() - started
        if dist.is_initialized():  # the directory goes once every rank has read the index
            dist.barrier()
    if rank == 0:
        print(
            f"{len(raw_text)} sentences ({sum(raw_text.lengths)} words) labeled by {world_size} process(es) x "
            f"{torch.get_num_threads()} thread(s) in {seconds:.1f} s: {len(raw_text) / seconds:.1f} sentences/s; "
            f"CPU {platform.machine()} ({os.cpu_count()} cores), torch {torch.__version__}, {date.today()}"
        )
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
