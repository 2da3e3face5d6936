"""Times structkd's structure algorithms against their bare limit and torch-struct, side by side.

For every row the three contenders run interleaved in the same process (ours, bare, torch-struct,
ours, bare, ...), so the machine's noise hits them alike; we report the median of the repeats and
the ratio ours / bare. The "bare limit" of an algorithm is the simplest implementation that computes
the same quantity and nothing more (e.g. for the CRF: a forward loop with `logsumexp`, then one
autograd call for the marginals); being within 1.3x of it is the goal.

    python benchmarks/structures.py --repeats 7 --output docs/benchmarks/structures.md

torch-struct is an optional extra (`pip install -e '.[bench]'`); without it its column is empty.
"""

import argparse
import platform
import statistics
import time
from datetime import date

import torch

from allennlp_light.nn.chu_liu_edmonds import decode_mst

from structkd_plugin.structures import (
    LinearChainCRF,
    NonProjectiveTree,
    ProjectiveTree,
    second_order_mean_field,
)

try:
    import torch_struct
except ImportError:  # optional benchmark extra
    torch_struct = None

BATCH = 32
KBEST = 5


# ---------------------------------------------------------------- bare limits (the reference floor)


def bare_crf_marginals(emissions, transitions, lengths):
    """Forward algorithm over positions with logsumexp, then one autograd call."""
    emissions = emissions.detach().requires_grad_()
    batch, n, labels = emissions.shape
    pairwise = transitions.expand(n, labels, labels).detach().requires_grad_()
    mask = torch.arange(n)[None, :] < lengths[:, None]
    alpha = emissions[:, 0]
    for i in range(1, n):
        step = torch.logsumexp(alpha[:, :, None] + pairwise[i] + emissions[:, i, None, :], dim=1)
        alpha = torch.where(mask[:, i, None], step, alpha)
    log_z = torch.logsumexp(alpha, dim=-1)
    unary, pair = torch.autograd.grad(log_z.sum(), [emissions, pairwise])
    return log_z, unary, pair


def bare_crf_viterbi(emissions, transitions, lengths):
    """Max-product forward loop storing back-pointers, then a vectorized backtrace."""
    batch, n, labels = emissions.shape
    mask = torch.arange(n)[None, :] < lengths[:, None]
    score = emissions[:, 0]
    pointers = []
    for i in range(1, n):
        best, arg = (score[:, :, None] + transitions + emissions[:, i, None, :]).max(dim=1)
        score = torch.where(mask[:, i, None], best, score)
        # Padding positions point to themselves so the backtrace passes through unchanged.
        pointers.append(torch.where(mask[:, i, None], arg, torch.arange(labels)))
    best_score, last = score.max(dim=-1)
    tags = [last]
    for arg in reversed(pointers):
        last = arg.gather(1, last[:, None]).squeeze(1)
        tags.append(last)
    return torch.stack(tags[::-1], dim=1), best_score


def bare_crf_kbest(emissions, transitions, lengths, k):
    """k-best Viterbi: keep the k best partial scores per state, top-k over (previous state, rank)."""
    batch, n, labels = emissions.shape
    mask = torch.arange(n)[None, :] < lengths[:, None]
    score = emissions.new_full((batch, labels, k), float("-inf"))
    score[:, :, 0] = emissions[:, 0]
    pointers = []
    for i in range(1, n):
        candidates = score[:, :, :, None] + transitions[:, None, :] + emissions[:, i, None, None, :]
        best, arg = candidates.reshape(batch, labels * k, labels).topk(k, dim=1)
        best = best.transpose(1, 2)
        arg = arg.transpose(1, 2)
        keep = torch.arange(labels)[:, None] * k + torch.arange(k)
        score = torch.where(mask[:, i, None, None], best, score)
        pointers.append(torch.where(mask[:, i, None, None], arg, keep))
    final, flat = score.reshape(batch, labels * k).topk(k, dim=-1)
    tags = [flat // k]
    for arg in reversed(pointers):
        flat = arg.reshape(batch, labels * k).gather(1, flat)
        tags.append(flat // k)
    return torch.stack(tags[::-1], dim=-1), final


def bare_matrix_tree(arc_scores, lengths):
    """One batched logdet of the single-root Laplacian, then autograd."""
    scores = arc_scores.detach().requires_grad_()
    batch, size, _ = scores.shape
    words = torch.arange(1, size)
    real = words[None, :] <= lengths[:, None]
    pair = real[:, :, None] & real[:, None, :] & ~torch.eye(size - 1, dtype=torch.bool)
    shift = scores[:, :, 1:].max(dim=1).values.detach()
    weights = (scores[:, 1:, 1:] - shift[:, None, :]).exp() * pair
    root = (scores[:, 0, 1:] - shift).exp() * real
    laplacian = torch.diag_embed(weights.sum(1)) - weights
    laplacian[:, 0] = root
    laplacian = laplacian + torch.diag_embed((~real).to(scores.dtype))
    log_z = torch.logdet(laplacian) + (shift * real).sum(-1)
    (marginals,) = torch.autograd.grad(log_z.sum(), [scores])
    return log_z, marginals


def _stripe(x, n, w, offset=(0, 0), horizontal=True):
    """A view of n diagonal stripes of width w of a [size, size, ...] chart (as in SuPar)."""
    x = x.contiguous()
    seq_len, stride = x.size(1), list(x.stride())
    numel = stride[1]
    return x.as_strided(
        size=(n, w, *x.shape[2:]),
        stride=[(seq_len + 1) * numel, (1 if horizontal else seq_len) * numel] + stride[2:],
        storage_offset=(offset[0] * seq_len + offset[1]) * numel,
    )


def bare_eisner_inside(arc_scores, lengths, reduce):
    """Eisner's inside pass (multi-root), spans of one width at a time, charts [size, size, batch].

    `reduce` is logsumexp (partition) or max (Viterbi); with autograd it gives marginals or the
    argmax arcs."""
    scores = arc_scores.permute(1, 2, 0)  # charts are [head, dependent, batch]
    size, _, batch = scores.shape
    incomplete = scores.new_full((size, size, batch), float("-inf"))
    complete = scores.new_full((size, size, batch), float("-inf"))
    complete.diagonal().fill_(0)
    for width in range(1, size):
        spans = size - width
        inner = _stripe(complete, spans, width) + _stripe(complete, spans, width, (width, 1))
        inner = reduce(inner.permute(2, 0, 1))
        incomplete.diagonal(-width).copy_(inner + scores.diagonal(-width))
        incomplete.diagonal(width).copy_(inner + scores.diagonal(width))
        left = _stripe(complete, spans, width, (0, 0), False) + _stripe(incomplete, spans, width, (width, 0))
        complete.diagonal(-width).copy_(reduce(left.permute(2, 0, 1)))
        right = _stripe(incomplete, spans, width, (0, 1)) + _stripe(complete, spans, width, (1, width), False)
        complete.diagonal(width).copy_(reduce(right.permute(2, 0, 1)))
    return complete[0].gather(0, lengths[None, :]).squeeze(0)


def bare_eisner_marginals(arc_scores, lengths):
    scores = arc_scores.detach().requires_grad_()
    log_z = bare_eisner_inside(scores, lengths, lambda x: x.logsumexp(-1))
    (marginals,) = torch.autograd.grad(log_z.sum(), [scores])
    return log_z, marginals


def bare_eisner_decode(arc_scores, lengths):
    scores = arc_scores.detach().requires_grad_()
    best = bare_eisner_inside(scores, lengths, lambda x: x.max(-1).values)
    (arcs,) = torch.autograd.grad(best.sum(), [scores])
    return arcs.argmax(dim=1)


def loop_decode_mst(arc_scores, lengths):
    """allennlp-light's per-sentence Chu-Liu-Edmonds (numpy), looped over the batch."""
    heads = []
    for scores, length in zip(arc_scores.numpy(), lengths.tolist()):
        energy = scores[: length + 1, : length + 1]
        heads.append(decode_mst(energy, length + 1, has_labels=False)[0])
    return heads


def bare_mean_field(arc_scores, sib_scores, grd_scores, mask, iterations=3):
    """The mean-field update written directly with einsum (no masking subtleties beyond -inf)."""
    size = arc_scores.size(-1)
    pair = mask[:, :, None] & mask[:, None, :] & ~torch.eye(size, dtype=torch.bool)
    pair[:, :, 0] = False
    arc = arc_scores.masked_fill(~pair, float("-inf"))
    q = arc.softmax(dim=1)
    for _ in range(iterations):
        q = q.masked_fill(~pair, 0)
        sib = torch.einsum("bhs,bhds->bhd", q, sib_scores)
        grandparent = torch.einsum("bgh,bghd->bhd", q, grd_scores)
        grandchild = torch.einsum("bdc,bhdc->bhd", q, grd_scores)
        q = (arc + sib + grandparent + grandchild).softmax(dim=1)
    return q.masked_fill(~pair, 0)


# ---------------------------------------------------------------- torch-struct adapters


def ts_crf_marginals(emissions, transitions, lengths):
    # torch-struct's edge potentials are [B, n-1, to, from]; the first emission folds into edge 0.
    potentials = (transitions.T[None, None] + emissions[:, 1:, :, None]).clone()
    potentials[:, 0] += emissions[:, 0, None, :]
    dist = torch_struct.LinearChainCRF(potentials, lengths=lengths)
    edges = dist.marginals
    return dist.partition, edges.sum(-1), edges


def ts_crf_viterbi(emissions, transitions, lengths):
    potentials = (transitions.T[None, None] + emissions[:, 1:, :, None]).clone()
    potentials[:, 0] += emissions[:, 0, None, :]
    return torch_struct.LinearChainCRF(potentials, lengths=lengths).argmax


def ts_crf_kbest(emissions, transitions, lengths, k):
    potentials = (transitions.T[None, None] + emissions[:, 1:, :, None]).clone()
    potentials[:, 0] += emissions[:, 0, None, :]
    return torch_struct.LinearChainCRF(potentials, lengths=lengths).topk(k)


def _ts_dependency_potentials(arc_scores):
    # torch-struct: [B, n, n] (head, child) over words, root arcs on the diagonal.
    words = arc_scores[:, 1:, 1:].clone()
    index = torch.arange(words.size(1))
    words[:, index, index] = arc_scores[:, 0, 1:]
    return words


def ts_matrix_tree(arc_scores, lengths):
    dist = torch_struct.NonProjectiveDependencyCRF(_ts_dependency_potentials(arc_scores), lengths=lengths)
    return dist.partition, dist.marginals


def ts_eisner_marginals(arc_scores, lengths):
    return torch_struct.DependencyCRF(_ts_dependency_potentials(arc_scores), lengths=lengths).marginals


def ts_eisner_decode(arc_scores, lengths):
    return torch_struct.DependencyCRF(_ts_dependency_potentials(arc_scores), lengths=lengths).argmax


# ---------------------------------------------------------------- structkd


def ours_crf_marginals(emissions, transitions, mask):
    crf = LinearChainCRF(emissions, transitions, mask)
    return crf.log_partition(), crf.unary_marginals(), crf.pairwise_marginals()


def ours_matrix_tree(arc_scores, mask):
    tree = NonProjectiveTree(arc_scores, mask)
    return tree.log_partition(), tree.marginals()


def ours_eisner_marginals(arc_scores, mask):
    tree = ProjectiveTree(arc_scores, mask, single_root=False)
    return tree.log_partition(), tree.marginals()


# ---------------------------------------------------------------- timing


SLOW_SECONDS = 2.0


def time_side_by_side(contenders, repeats):
    """Median milliseconds of each contender, run interleaved; None where it raised.

    A contender whose warm-up run takes over SLOW_SECONDS (torch-struct's k-best takes tens of
    seconds) is timed by that run alone: at that distance, precision does not matter."""
    times = {name: [] for name in contenders}
    failures, slow = {}, set()
    for name, run in contenders.items():  # warm-up, and find out which ones fail
        try:
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
        except Exception as error:  # noqa: BLE001 - a failing library is a result to report
            failures[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
            continue
        if elapsed > SLOW_SECONDS:
            slow.add(name)
            times[name].append(elapsed * 1000)
    for _ in range(repeats):
        for name, run in contenders.items():
            if name in failures or name in slow:
                continue
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: (statistics.median(t) if t else None) for name, t in times.items()}, failures


def random_lengths(n, generator):
    lengths = torch.randint(max(1, n // 2), n + 1, (BATCH,), generator=generator)
    lengths[0] = n
    return lengths


def check_close(name, ours, reference, atol=1e-3):
    if not torch.allclose(ours, reference, atol=atol, rtol=1e-4):
        raise AssertionError(f"{name}: structkd and the reference disagree; the timing would be meaningless")


def benchmark_rows(sizes, label_counts, repeats):
    generator = torch.Generator().manual_seed(0)
    rows = []

    def add(algorithm, shape, contenders):
        medians, failures = time_side_by_side(contenders, repeats)
        rows.append((algorithm, shape, medians, failures))
        print(format_row(rows[-1]), flush=True)

    for labels in label_counts:
        for n in sizes:
            emissions = torch.randn(BATCH, n, labels, generator=generator)
            transitions = torch.randn(labels, labels, generator=generator)
            lengths = random_lengths(n, generator)
            mask = torch.arange(n)[None, :] < lengths[:, None]
            shape = f"n={n}, L={labels}"
            log_z, unary, _ = ours_crf_marginals(emissions, transitions, mask)
            bare_log_z, bare_unary, _ = bare_crf_marginals(emissions, transitions, lengths)
            check_close("CRF log Z", log_z, bare_log_z)
            check_close("CRF unary marginals", unary, bare_unary)
            add("CRF log Z + unary + pairwise marginals", shape, {
                "structkd": lambda: ours_crf_marginals(emissions, transitions, mask),
                "bare": lambda: bare_crf_marginals(emissions, transitions, lengths),
                "torch-struct": lambda: ts_crf_marginals(emissions, transitions, lengths),
            })
            add("CRF Viterbi", shape, {
                "structkd": lambda: LinearChainCRF(emissions, transitions, mask).argmax(),
                "bare": lambda: bare_crf_viterbi(emissions, transitions, lengths),
                "torch-struct": lambda: ts_crf_viterbi(emissions, transitions, lengths),
            })
            _, kbest_scores = LinearChainCRF(emissions, transitions, mask).topk(KBEST)
            _, bare_kbest_scores = bare_crf_kbest(emissions, transitions, lengths, KBEST)
            check_close("CRF k-best scores", kbest_scores, bare_kbest_scores)
            add(f"CRF {KBEST}-best", shape, {
                "structkd": lambda: LinearChainCRF(emissions, transitions, mask).topk(KBEST),
                "bare": lambda: bare_crf_kbest(emissions, transitions, lengths, KBEST),
                "torch-struct": lambda: ts_crf_kbest(emissions, transitions, lengths, KBEST),
            })

    for n in sizes:
        arc_scores = torch.randn(BATCH, n + 1, n + 1, generator=generator)
        lengths = random_lengths(n, generator)
        mask = torch.arange(n + 1)[None, :] <= lengths[:, None]
        shape = f"n={n}"
        check_close("Matrix-Tree log Z", ours_matrix_tree(arc_scores, mask)[0], bare_matrix_tree(arc_scores, lengths)[0])
        add("Matrix-Tree log Z + marginals", shape, {
            "structkd": lambda: ours_matrix_tree(arc_scores, mask),
            "bare": lambda: bare_matrix_tree(arc_scores, lengths),
            "torch-struct": lambda: ts_matrix_tree(arc_scores, lengths),
        })
        check_close("Eisner log Z", ours_eisner_marginals(arc_scores, mask)[0], bare_eisner_marginals(arc_scores, lengths)[0])
        add("Eisner log Z + marginals", shape, {
            "structkd": lambda: ours_eisner_marginals(arc_scores, mask),
            "bare": lambda: bare_eisner_marginals(arc_scores, lengths),
            "torch-struct": lambda: ts_eisner_marginals(arc_scores, lengths),
        })
        add("Eisner decode", shape, {
            "structkd": lambda: ProjectiveTree(arc_scores, mask, single_root=False).argmax(),
            "bare": lambda: bare_eisner_decode(arc_scores, lengths),
            "torch-struct": lambda: ts_eisner_decode(arc_scores, lengths),
        })
        add("MST decode (single root)", shape, {
            "structkd": lambda: NonProjectiveTree(arc_scores, mask).argmax(),
            "bare": lambda: loop_decode_mst(arc_scores, lengths),
        })
        sib_scores = torch.randn(BATCH, n + 1, n + 1, n + 1, generator=generator)
        sib_scores = (sib_scores + sib_scores.transpose(2, 3)) / 2  # a score of the unordered pair (d, s)
        sib_scores.diagonal(dim1=2, dim2=3).zero_()  # a word is not its own sibling
        grd_scores = torch.randn(BATCH, n + 1, n + 1, n + 1, generator=generator)
        check_close(
            "mean-field marginals",
            second_order_mean_field(arc_scores, sib_scores, grd_scores, mask),
            bare_mean_field(arc_scores, sib_scores, grd_scores, mask),
        )
        add("Mean-field (3 iterations)", shape, {
            "structkd": lambda: second_order_mean_field(arc_scores, sib_scores, grd_scores, mask),
            "bare": lambda: bare_mean_field(arc_scores, sib_scores, grd_scores, mask),
        })
    return rows


def format_ms(value):
    return "—" if value is None else f"{value:.1f}"


def format_row(row):
    algorithm, shape, medians, failures = row
    ours, bare = medians["structkd"], medians["bare"]
    ratio = f"{ours / bare:.2f}x" if ours and bare else "—"
    if torch_struct is None or "torch-struct" not in medians:
        other = "n/a"
    elif "torch-struct" in failures:
        other = f"fails ({failures['torch-struct']})"
    else:
        other = format_ms(medians["torch-struct"])
    return f"| {algorithm} | {shape} | {format_ms(ours)} | {format_ms(bare)} | {ratio} | {other} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--labels", type=int, nargs="+", default=[9, 20])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is the repeatable setting on a shared machine)")
    parser.add_argument("--output", help="also write the markdown table to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    header = [
        f"Batch {BATCH}, float32, CPU ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads), torch {torch.__version__}, "
        f"torch-struct {'0.5' if torch_struct else 'not installed'}; {date.today()}; "
        f"median of {args.repeats} interleaved runs, milliseconds.",
        "",
        "| algorithm | shape | structkd (ms) | bare limit (ms) | structkd / bare | torch-struct (ms) |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(header), flush=True)
    rows = benchmark_rows(args.sizes, args.labels, args.repeats)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write("\n".join(header + [format_row(row) for row in rows]) + "\n")


if __name__ == "__main__":
    main()
