"""Exact, batched, differentiable algorithms over structures: pure tensor code, no models.

| structure | class or function |
|---|---|
| tag sequences, linear-chain CRF | `LinearChainCRF` |
| tag sequences, independent positions (softmax tagger) | `IndependentTags` |
| dependency trees, non-projective (Matrix-Tree, Chu-Liu-Edmonds) | `NonProjectiveTree` |
| dependency trees, projective (Eisner) | `ProjectiveTree` |
| heads chosen independently per word | `head_selection_log_probs`, `gather_heads` |
| second-order head selection (mean field) | `second_order_mean_field` |
| non-overlapping labeled spans (semi-Markov) | `SpanSegmentation` |
| tag schemes (BIO, IOB1, BIOES) | `label_schemes` |
"""

from structkd_plugin.structures.head_selection import HeadSelection, gather_heads, head_selection_log_probs
from structkd_plugin.structures.independent_tags import IndependentTags
from structkd_plugin.structures.label_schemes import (
    allowed_transitions_matrix,
    convert_pairwise_marginals,
    convert_tags,
    convert_unary_marginals,
    count_scheme_violations,
    marginal_conversion_matrix,
    same_name_matrix,
    scheme_tag_set,
    spans_from_tags,
    tags_from_spans,
)
from structkd_plugin.structures.linear_chain_crf import LinearChainCRF
from structkd_plugin.structures.mean_field import second_order_mean_field
from structkd_plugin.structures.mst import maximum_spanning_arborescence
from structkd_plugin.structures.nonprojective_tree import NonProjectiveTree
from structkd_plugin.structures.projective_tree import ProjectiveTree
from structkd_plugin.structures.span_segmentation import SpanSegmentation

__all__ = [
    "HeadSelection",
    "IndependentTags",
    "LinearChainCRF",
    "NonProjectiveTree",
    "ProjectiveTree",
    "SpanSegmentation",
    "allowed_transitions_matrix",
    "convert_pairwise_marginals",
    "convert_tags",
    "convert_unary_marginals",
    "count_scheme_violations",
    "gather_heads",
    "head_selection_log_probs",
    "marginal_conversion_matrix",
    "same_name_matrix",
    "maximum_spanning_arborescence",
    "scheme_tag_set",
    "second_order_mean_field",
    "spans_from_tags",
    "tags_from_spans",
]
