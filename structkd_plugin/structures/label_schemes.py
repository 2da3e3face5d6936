"""Tag schemes for labeled spans, conversions between them, and conversion of tag marginals.

Schemes
-------
A tag is ``"O"`` or ``"<prefix>-<type>"`` (the type may itself contain ``-``: ``"B-WORK-OF-ART"``).

* ``"BIO"`` (also called ``"IOB2"``): ``B-`` opens every span, ``I-`` continues it.
* ``"IOB1"``: ``I-`` opens and continues spans; ``B-`` opens a span only directly after a span of
  the same type (to separate the two).
* ``"BIOES"`` (also ``"IOBES"``): one-token spans are ``S-``; longer ones are ``B-`` (``I-``)* ``E-``.

Reading tags
------------
``spans_from_tags`` reads all three schemes with one rule, the chunk rule of the CoNLL evaluation
script (conlleval), so any tag sequence, well-formed or not, gives one deterministic set of spans;
its docstring states the rule. Data readers use it to repair ill-formed annotation.

Well-formedness is decided per adjacent pair of tags (``allowed_transitions_matrix``): a sequence
is well-formed in its scheme exactly when it is the canonical writing of its own spans.

Marginals
---------
When a tag of one scheme always corresponds to the same tag of another, whatever its neighbours
(BIOES -> BIO: ``B-x, S-x -> B-x``; ``I-x, E-x -> I-x``), probabilities of tags and of tag bigrams
convert by summation with a 0/1 matrix ``M [Ls, Lt]``: ``P_t = P_s M`` and ``P_t2 = M^T P_s2 M``.
"""

import torch

_PREFIXES = {"BIO": ("B", "I"), "IOB1": ("B", "I"), "BIOES": ("B", "I", "E", "S")}
_ALIASES = {"IOB2": "BIO", "IOBES": "BIOES"}


def _scheme(name):
    """Canonical scheme name ("BIO", "IOB1" or "BIOES") of ``name``, case-insensitive."""
    canonical = _ALIASES.get(name.upper(), name.upper())
    if canonical not in _PREFIXES:
        raise ValueError(f"unknown tag scheme {name!r}; expected one of BIO (IOB2), IOB1, BIOES (IOBES)")
    return canonical


def _split(tag, scheme):
    """``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", None)``; ValueError if the scheme has no such tag."""
    if tag == "O":
        return "O", None
    prefix, _, entity_type = tag.partition("-")
    if prefix not in _PREFIXES[scheme] or not entity_type:
        raise ValueError(
            f"tag {tag!r} is not a {scheme} tag (expected 'O' or one of "
            f"{', '.join(p + '-<type>' for p in _PREFIXES[scheme])})"
        )
    return prefix, entity_type


# -------------------------------------------------------------------------------------------
# Tags <-> spans


def spans_from_tags(tags, scheme):
    """Labeled spans of a tag sequence, read with the conlleval chunk rule.

    The rule (conlleval's, with the usual extension to ``E-``/``S-``), which also repairs
    ill-formed input deterministically:

        A non-O tag *continues* the open span iff it is ``I-`` or ``E-``, has the same type as the
        previous tag, and the previous tag is ``B-`` or ``I-``. Every other non-O tag *opens* a
        span. A span is closed by ``O``, by a tag that opens a span, by the end of the sentence,
        and right after an ``E-`` or ``S-`` tag.

    So in BIO an ``I-X`` after ``O`` or after another type opens a span; in BIOES an ``I-``/``E-``
    without an open ``B-``/``I-`` of its type opens one, a ``B-`` without its ``E-`` is a span that
    ends where the next tag does not continue it, and ``E-X E-X`` is two spans. IOB1 is read the
    same way (there ``B-X`` after ``I-X`` separates two adjacent spans, as intended).

    Args:
        tags: list of tag strings of one sentence.
        scheme: "BIO"/"IOB2", "IOB1" or "BIOES"/"IOBES"; tags with prefixes outside the scheme
            raise ValueError.

    Returns:
        ``[(type, start, end), ...]`` with ``end`` inclusive, in order of position.
    """
    scheme = _scheme(scheme)
    spans = []
    previous_prefix, previous_type = "O", None
    for position, tag in enumerate(tags):
        prefix, entity_type = _split(tag, scheme)
        if prefix != "O":
            open_span_of_same_type = previous_prefix in ("B", "I") and previous_type == entity_type
            if prefix in ("I", "E") and open_span_of_same_type:
                spans[-1] = (entity_type, spans[-1][1], position)
            else:
                spans.append((entity_type, position, position))
        previous_prefix, previous_type = prefix, entity_type
    return spans


def tags_from_spans(spans, length, scheme):
    """Canonical tags of a sentence of ``length`` tokens holding non-overlapping ``spans``.

    Args:
        spans: iterable of ``(type, start, end)``, ``end`` inclusive, in any order.
        length: number of tokens.
        scheme: "BIO"/"IOB2", "IOB1" or "BIOES"/"IOBES".

    Returns:
        list of ``length`` tag strings. Raises ValueError for spans that overlap or leave the sentence.
    """
    scheme = _scheme(scheme)
    tags = ["O"] * length
    previous_end, previous_type = -1, None
    for entity_type, start, end in sorted(spans, key=lambda span: span[1]):
        if not 0 <= start <= end < length:
            raise ValueError(f"span {(entity_type, start, end)} does not fit in {length} tokens")
        if start <= previous_end:
            raise ValueError(
                f"span {(entity_type, start, end)} overlaps the span ending at {previous_end}"
            )
        for position in range(start, end + 1):
            tags[position] = f"I-{entity_type}"
        if scheme != "IOB1" or (start == previous_end + 1 and entity_type == previous_type):
            tags[start] = f"B-{entity_type}"  # IOB1 writes B- only right after a span of its type
        if scheme == "BIOES":
            tags[end] = f"E-{entity_type}" if start < end else f"S-{entity_type}"
        previous_end, previous_type = end, entity_type
    return tags


def convert_tags(tags, source, target):
    """Rewrite ``tags`` from scheme ``source`` to scheme ``target`` through their spans.

    Ill-formed input is first read with the repair rule of ``spans_from_tags``, so the result is
    always well-formed in ``target``.
    """
    return tags_from_spans(spans_from_tags(tags, source), len(tags), target)


# -------------------------------------------------------------------------------------------
# Well-formedness


def _start_allowed(prefix, scheme):
    if scheme == "BIO":
        return prefix != "I"
    if scheme == "IOB1":
        return prefix != "B"  # a B- must follow a span of its own type
    return prefix in ("O", "B", "S")


def _transition_allowed(previous, current, scheme):
    """May tag ``current`` follow tag ``previous``? Both are ``(prefix, type)`` pairs."""
    (previous_prefix, previous_type), (prefix, entity_type) = previous, current
    inside_span = previous_prefix in ("B", "I")  # a span of previous_type is open and unfinished
    if scheme == "BIO":
        return prefix != "I" or (inside_span and previous_type == entity_type)
    if scheme == "IOB1":
        return prefix != "B" or (inside_span and previous_type == entity_type)
    if inside_span:
        return prefix in ("I", "E") and previous_type == entity_type
    return prefix in ("O", "B", "S")


def _end_allowed(prefix, scheme):
    return scheme != "BIOES" or prefix in ("O", "E", "S")


def count_scheme_violations(tags, scheme):
    """Number of positions at which ``tags`` is not well-formed in ``scheme``.

    A position counts when its tag may not start a sentence (first position), may not follow the
    previous tag, or may not end a sentence (last position); each position counts at most once.
    Examples: BIO ``["I-PER", "O", "I-LOC"]`` has 2; BIOES ``["B-PER", "O"]`` has 1 (at ``O``).
    """
    scheme = _scheme(scheme)
    parsed = [_split(tag, scheme) for tag in tags]
    violations = 0
    for position, current in enumerate(parsed):
        ok = (
            _start_allowed(current[0], scheme)
            if position == 0
            else _transition_allowed(parsed[position - 1], current, scheme)
        )
        if position == len(parsed) - 1:
            ok = ok and _end_allowed(current[0], scheme)
        violations += not ok
    return violations


def scheme_tag_set(entity_labels, scheme):
    """All tags of ``scheme`` for the entity types ``entity_labels``: "O" first, then per type in
    the given order its B, I (and E, S for BIOES) tags."""
    scheme = _scheme(scheme)
    if len(set(entity_labels)) != len(entity_labels):
        raise ValueError(f"entity labels repeat: {entity_labels}")
    return ["O"] + [f"{prefix}-{label}" for label in entity_labels for prefix in _PREFIXES[scheme]]


def allowed_transitions_matrix(tags, scheme):
    """Which tag bigrams, first tags and last tags are well-formed in ``scheme``.

    Args:
        tags: the tag set, a list of ``L`` tag strings (e.g. from ``scheme_tag_set``).
        scheme: "BIO"/"IOB2", "IOB1" or "BIOES"/"IOBES".

    Returns:
        ``(transitions [L, L], start [L], end [L])`` bool tensors: ``transitions[a, b]`` says tag
        ``tags[b]`` may follow ``tags[a]``; ``start``/``end`` say which tags may begin/end a
        sentence. A CRF enforces the scheme with ``scores.masked_fill(~allowed, -inf)``.
    """
    scheme = _scheme(scheme)
    parsed = [_split(tag, scheme) for tag in tags]
    transitions = torch.tensor(
        [[_transition_allowed(previous, current, scheme) for current in parsed] for previous in parsed],
        dtype=torch.bool,
    ).reshape(len(tags), len(tags))
    start = torch.tensor([_start_allowed(prefix, scheme) for prefix, _ in parsed], dtype=torch.bool)
    end = torch.tensor([_end_allowed(prefix, scheme) for prefix, _ in parsed], dtype=torch.bool)
    return transitions, start, end


# -------------------------------------------------------------------------------------------
# Marginals


def _infer_scheme(tags):
    """BIOES if any tag has an E- or S- prefix, else BIO (IOB1 cannot be told from BIO by its tags)."""
    return "BIOES" if any(tag[:2] in ("E-", "S-") for tag in tags) else "BIO"


# Source prefix -> target prefix, for the prefixes whose meaning does not depend on the
# neighbouring tags; within one scheme every tag maps to itself, and O to O always.
_CONTEXT_FREE_PREFIXES = {
    ("BIOES", "BIO"): {"B": "B", "S": "B", "I": "I", "E": "I"},
    ("BIOES", "IOB1"): {"I": "I", "E": "I"},  # a span's first token is B- or I- by the previous span
    ("BIO", "IOB1"): {"I": "I"},
    ("IOB1", "BIO"): {"B": "B"},  # an IOB1 I- may open a span or continue one
}


def _tag_image(prefix, entity_type, source, target):
    """The tag of scheme ``target`` that tag (prefix, type) of scheme ``source`` always means,
    or None when that depends on the neighbouring tags."""
    if prefix == "O":
        return "O"
    if source == target:
        return f"{prefix}-{entity_type}"
    target_prefix = _CONTEXT_FREE_PREFIXES.get((source, target), {}).get(prefix)
    return None if target_prefix is None else f"{target_prefix}-{entity_type}"


def marginal_conversion_matrix(source_tags, target_tags, *, source_scheme=None, target_scheme=None):
    """0/1 matrix ``M [Ls, Lt]`` sending each source tag to the one target tag it always means.

    Args:
        source_tags, target_tags: tag sets (lists of tag strings) of the two schemes.
        source_scheme, target_scheme: scheme names; by default inferred from the tags (BIOES if
            any ``E-``/``S-`` tag, else BIO). IOB1 uses the same tag strings as BIO, so it must
            be named.

    Supported: identity within one scheme; BIOES -> BIO (``B-x, S-x -> B-x``, ``I-x, E-x -> I-x``);
    the tags of other pairs whose image does not depend on the neighbours (IOB1 -> BIO: ``B-x``;
    BIO/BIOES -> IOB1: ``I-x`` and ``E-x``); ``O -> O`` always. Raises ValueError naming every
    source tag that has no such image or whose image is missing from ``target_tags``.
    """
    source = _scheme(source_scheme) if source_scheme else _infer_scheme(source_tags)
    target = _scheme(target_scheme) if target_scheme else _infer_scheme(target_tags)
    target_index = {tag: index for index, tag in enumerate(target_tags)}
    for tag in target_tags:
        _split(tag, target)
    matrix = torch.zeros(len(source_tags), len(target_tags))
    ambiguous, missing = [], []
    for row, tag in enumerate(source_tags):
        image = _tag_image(*_split(tag, source), source, target)
        if image is None:
            ambiguous.append(tag)
        elif image not in target_index:
            missing.append(f"{tag} -> {image}")
        else:
            matrix[row, target_index[image]] = 1.0
    problems = []
    if ambiguous:
        problems.append(
            f"{source} tags whose {target} tag depends on the neighbouring tags: {', '.join(ambiguous)}"
        )
    if missing:
        problems.append(
            f"{source} tags whose {target} tag is not in the target tag set: {', '.join(missing)}"
        )
    if problems:
        raise ValueError("cannot convert marginals; " + "; ".join(problems))
    return matrix


def convert_unary_marginals(marginals, conversion):
    """Tag marginals ``[..., Ls]`` -> ``[..., Lt]``, summing the source tags of each target tag.

    ``conversion`` is a ``marginal_conversion_matrix``. Differentiable.
    """
    return marginals @ conversion.to(marginals)


def convert_pairwise_marginals(marginals, conversion):
    """Tag-bigram marginals ``[..., Ls, Ls]`` -> ``[..., Lt, Lt]``, summing over the source bigrams
    of each target bigram. ``conversion`` is a ``marginal_conversion_matrix``. Differentiable."""
    conversion = conversion.to(marginals)
    return conversion.transpose(0, 1) @ marginals @ conversion


def same_name_matrix(source_tags, target_tags) -> torch.Tensor:
    """0/1 matrix ``M [Ls, Lt]`` sending each source tag to the target tag of the same name, for
    tags that are not span tags (parts of speech, say). Raises ValueError naming every source tag
    the target tag set lacks."""
    target_index = {tag: index for index, tag in enumerate(target_tags)}
    missing = [tag for tag in source_tags if tag not in target_index]
    if missing:
        raise ValueError(f"cannot convert marginals; tags not in the target tag set: {', '.join(missing)}")
    matrix = torch.zeros(len(source_tags), len(target_tags))
    for row, tag in enumerate(source_tags):
        matrix[row, target_index[tag]] = 1.0
    return matrix

