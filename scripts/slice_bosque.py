"""Writes fixtures/bosque/: the first sentences of UniversalNER Portuguese-Bosque's train, dev and
test files, unchanged (whole sentences with their comment lines), for `make demo`.

    python scripts/slice_bosque.py ../shared/data/UNER_Portuguese-Bosque
"""

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"train": 2000, "dev": 300, "test": 300}


def first_sentences(path: Path, count: int) -> str:
    sentences = [block for block in path.read_text(encoding="utf-8").split("\n\n") if block.strip()]
    return "\n\n".join(sentences[:count]) + "\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="the UNER_Portuguese-Bosque directory")
    args = parser.parse_args()
    output = ROOT / "fixtures" / "bosque"
    output.mkdir(parents=True, exist_ok=True)
    for split, count in SIZES.items():
        text = first_sentences(args.corpus / f"pt_bosque-ud-{split}.iob2", count)
        (output / f"{split}.iob2").write_text(text, encoding="utf-8")
    shutil.copyfile(args.corpus / "LICENSE.txt", output / "LICENSE.txt")


if __name__ == "__main__":
    main()
