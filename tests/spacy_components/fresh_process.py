"""Loads exported pipelines in a process that has not imported structkd, so spaCy must find the
components through the `spacy_factories` entry points: `python fresh_process.py < jobs.json`,
jobs `[{"pipeline": DIR, "sentences": [[word, ...], ...]}, ...]`; prints the `annotations` of
each job's docs as JSON."""

import json
import sys

from spacy.tokens import Doc


def annotations(doc: Doc) -> dict:
    """A doc's entities `[label, first, last]` (tokens, last inclusive) and, when parsed, its
    sentences' `heads` (0 = root, tokens numbered from 1 within the sentence) and `deprels`: the
    formats of `spans_from_tags` and of the parsers' predictions."""
    result: dict = {"entities": [[e.label_, e.start, e.end - 1] for e in doc.ents]}
    if doc.has_annotation("DEP"):
        result["sentences"] = [
            {
                "heads": [0 if token.head.i == token.i else token.head.i - sentence.start + 1 for token in sentence],
                "deprels": [token.dep_ for token in sentence],
            }
            for sentence in doc.sents
        ]
    return result


if __name__ == "__main__":
    import spacy

    results = []
    for job in json.load(sys.stdin):
        nlp = spacy.load(job["pipeline"])
        docs = nlp.pipe(Doc(nlp.vocab, words=words) for words in job["sentences"])
        results.append([annotations(doc) for doc in docs])
    print(json.dumps(results))
