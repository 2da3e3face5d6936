"""Writes a seeded random sample of a CoNLL-U file's sentences (in file order), e.g. a small
treebank's worth of English-EWT train:

    python benchmarks/sample_sentences.py ../shared/data/UD_English-EWT/en_ewt-ud-train.conllu 1300 runs/ewt-1300.conllu
"""

import argparse
import random

import conllu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("sentences", type=int)
    parser.add_argument("output")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(args.input, encoding="utf-8") as file:
        sentences = list(conllu.parse_incr(file))
    kept = sorted(random.Random(args.seed).sample(range(len(sentences)), args.sentences))
    with open(args.output, "x", encoding="utf-8") as file:
        file.writelines(sentences[i].serialize() for i in kept)
    print(f"{len(kept)} of {len(sentences)} sentences written to {args.output}")


if __name__ == "__main__":
    main()
