"""Batched maximum spanning arborescence (Chu-Liu-Edmonds), optionally with one root child.

Conventions: ``arc_scores [B, n+1, n+1]``, entry ``[b, h, d]`` scores the arc h -> d, index 0 is
the root; ``mask [B, n+1]`` is True on the root and on the real words 1..n_b (a prefix). The result
is a head tensor ``[B, n+1]`` (long): ``heads[b, d]`` is the head of word d, ``heads[:, 0] = 0`` and
padding positions hold 0.

Algorithm (Chu-Liu-Edmonds, all sentences at once, no loop over sentences or words):

1. Every node is its own *component*. Each round, every component picks its best incoming arc
   (an arc from outside the component into any of its nodes). The picked arcs form a graph over
   components in which every component has one parent; its cycles are found by pointer jumping
   (O(log n) gathers).
2. All cycles are contracted at once. Contraction is done on the original node indices: the nodes
   of a cycle get a common component label, arcs inside the new component are removed, and the
   arcs entering a former component c are lowered by the score of the arc c picked, so that
   choosing an arc into the cycle later accounts for the cycle arc it breaks (the classic score
   adjustment).
3. Rounds repeat until no sentence has a cycle; sentences that are done just stop changing.
4. Expansion walks the rounds backwards: a component keeps the arc chosen for the enclosing
   component if that arc enters it, and otherwise uses the arc it picked in that round. At the
   first round the components are single words, so the arc kept by each word is its head.

Single root (one child of the root): Gabow & Tarjan's constraint, as presented by Zmigrod, Vieira
& Cotterell (2020), "Please Mind the Root". When a sentence's picked arcs have no cycle but the root
has several children, the root child that is cheapest to re-attach (its picked root arc's score
minus its best non-root arc) swaps to that non-root arc: its component may not take a root arc
until it is merged into a cycle (the swap can close one), and the rounds continue. Each round
lowers 2 * (number of components) + (number of root children), so there are fewer than 3(n+1).

The score adjustments are accumulated in float64 so that they do not lose ties or precision. -inf
marks a forbidden arc; at least one tree must remain possible.
"""

import math

import torch

from structkd_plugin.structures.masks import check_prefix_mask


def _cycles_of(parent):
    """Cycles of the functional graph ``parent [B, N]`` (node -> its parent), node 0 a fixed point.

    Returns ``on_cycle [B, N]`` (bool) and ``cycle_id [B, N]``: for nodes on a cycle, the smallest
    node index of that cycle (shared by all its nodes).
    """
    nodes = torch.arange(parent.shape[1], device=parent.device).expand_as(parent)
    jump, cycle_id = parent, nodes
    # After k doublings, jump = parent^(2^k) and cycle_id = min over the next 2^k nodes on the path.
    for _ in range(max(1, math.ceil(math.log2(parent.shape[1])))):
        cycle_id = torch.minimum(cycle_id, cycle_id.gather(1, jump))
        jump = jump.gather(1, jump)
    # parent^(2^k) with 2^k >= N lands every node on a cycle (or the root), and its image is all
    # the cycle nodes.
    on_cycle = torch.zeros_like(parent, dtype=torch.bool).scatter_(1, jump, True)
    on_cycle[:, 0] = False
    return on_cycle, cycle_id


def _per_component(values, component, reduce, empty):
    """``[B, N]``: entry c reduces ``values`` over the nodes v with ``component[v] == c``."""
    return torch.full_like(values, empty).scatter_reduce(1, component, values, reduce, include_self=False)


def maximum_spanning_arborescence(arc_scores, mask, single_root=True):
    """Highest-scoring dependency tree of every sentence of a padded batch.

    Args:
        arc_scores: ``[B, n+1, n+1]`` float, ``[b, h, d]`` = score of h -> d (0 is the root).
            Self-loops, arcs into the root and arcs touching padding are ignored; -inf forbids an
            arc.
        mask: ``[B, n+1]`` bool, True on the root and the real words (a prefix).
        single_root: if True, exactly one word is attached to the root.

    Returns:
        ``[B, n+1]`` long heads; ``heads[:, 0]`` and padding positions are 0.
    """
    check_prefix_mask(mask, first="the root")
    batch_size, size, _ = arc_scores.shape
    device = arc_scores.device
    nodes = torch.arange(size, device=device)
    words = mask.clone()
    words[:, 0] = False
    forbidden = ~(mask[:, :, None] & words[:, None, :]) | torch.eye(size, dtype=torch.bool, device=device)
    # Arcs inside a component are removed from `scores` as components merge; the score
    # adjustments are kept apart, per dependent node, as they apply to a whole column.
    scores = arc_scores.detach().masked_fill(forbidden, -math.inf)
    lowering = torch.zeros(batch_size, size, dtype=torch.float64, device=device)

    component = nodes.expand(batch_size, size).clone()
    root_banned = torch.zeros_like(mask)  # root arcs into these nodes are set aside (single root)
    rounds = []  # per round: (component of every node, picked arc (head, dependent) per component)
    # Each round lowers 2 * (number of components) + (number of root children) by at least one.
    best_non_root = scores[:, 1:, :].max(dim=1)  # recomputed whenever `scores` changes
    for _ in range(3 * size):
        non_root_value = best_non_root.values.double() - lowering
        non_root_head = best_non_root.indices
        root_value = scores[:, 0, :].masked_fill(root_banned, -math.inf).double() - lowering
        from_root = root_value >= non_root_value
        best_value = torch.where(from_root, root_value, non_root_value)
        best_head = torch.where(from_root, 0, non_root_head + 1)
        # The best arc into each component is the best arc into any of its nodes (the first one
        # on ties); ids that are not components keep value -inf and node 0.
        picked_value = _per_component(best_value, component, "amax", -math.inf)
        is_best = best_value == picked_value.gather(1, component)
        picked_dep = _per_component(torch.where(is_best, nodes, size), component, "amin", 0)
        picked_head = best_head.gather(1, picked_dep)
        rounds.append((component, picked_head, picked_dep))

        alive = (component == nodes) & words  # components that still need a head
        parent = torch.where(alive, component.gather(1, picked_head), 0)
        on_cycle, cycle_id = _cycles_of(parent)
        has_cycle = on_cycle.any(1)
        root_child = alive & (parent == 0)
        fix_root = single_root & ~has_cycle & (root_child.sum(1) > 1)
        if not (has_cycle.any() or fix_root.any()):
            break

        if has_cycle.any():
            # Contract every cycle: lower the arcs into each former component by its picked arc,
            # relabel the nodes, and drop the arcs inside the new components. A new component
            # may take any root arc again.
            node_on_cycle = on_cycle.gather(1, component)
            lowering = lowering + torch.where(node_on_cycle, picked_value.gather(1, component), 0.0)
            component = torch.where(on_cycle, cycle_id, nodes).gather(1, component)
            scores = scores.masked_fill(component[:, :, None] == component[:, None, :], -math.inf)
            best_non_root = scores[:, 1:, :].max(dim=1)
            root_banned = root_banned & ~node_on_cycle

        if fix_root.any():
            # Swap the root arc that is cheapest to replace by the best non-root arc into its
            # component: that component may not take a root arc until it is merged into a cycle.
            alternative = _per_component(non_root_value, component, "amax", -math.inf)
            cost = (picked_value - alternative).masked_fill(~root_child, math.inf)
            swapped = cost.argmin(1, keepdim=True)
            root_banned = root_banned | (fix_root[:, None] & (component == swapped))

    # Expansion: (arc_head, arc_dep)[v] is the arc entering the component that holds v.
    arc_head = torch.zeros_like(component)
    arc_dep = torch.full_like(component, -1)
    for component, picked_head, picked_dep in reversed(rounds):
        enters = (arc_dep >= 0) & (component.gather(1, arc_dep.clamp(min=0)) == component)
        arc_head = torch.where(enters, arc_head, picked_head.gather(1, component))
        arc_dep = torch.where(enters, arc_dep, picked_dep.gather(1, component))
    return arc_head.masked_fill(~words, 0)
