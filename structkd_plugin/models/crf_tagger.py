"""`crf_tagger`: embedder -> encoder -> emissions -> linear-chain CRF."""

from typing import Any

import torch

from structkd_plugin.models.model import Model
from structkd_plugin.models.tagger import SequenceTagger
from structkd_plugin.structures import LinearChainCRF
from structkd_plugin.structures.label_schemes import allowed_transitions_matrix


@Model.register("crf_tagger")
class CrfTagger(SequenceTagger):
    """A linear-chain CRF tagger (Lample et al. 2016), as allennlp-models' `crf_tagger`.

    Constructor arguments are those of `SequenceTagger` plus:

    # Parameters

    constrain_crf_decoding : `bool`, optional
        Forbid (score -inf) the transitions, starts and ends that `label_encoding` makes
        ill-formed (e.g. O -> I-PER in BIO), in training and decoding. Defaults to true when
        `label_encoding` is given.
    include_start_end_transitions : `bool`
        Learn scores for the first and the last tag of a sentence.

    The model scores a tag sequence y as sum_i e_i(y_i) + sum_i A(y_{i-1}, y_i) + start(y_1) +
    end(y_n); its loss is the negative log-likelihood averaged over the sentences of the batch.
    For distillation its output holds its potentials (`emissions`, and the constrained
    `transitions`, `start`, `end`), from which `crf` gives its unary and pairwise marginals.
    """

    def __init__(
        self,
        *args: Any,
        constrain_crf_decoding: bool | None = None,
        include_start_end_transitions: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        num_labels = len(self.labels)
        self.transitions = torch.nn.Parameter(torch.zeros(num_labels, num_labels))
        self.include_start_end_transitions = include_start_end_transitions
        if include_start_end_transitions:
            self.start_transitions = torch.nn.Parameter(torch.zeros(num_labels))
            self.end_transitions = torch.nn.Parameter(torch.zeros(num_labels))
        if constrain_crf_decoding is None:
            constrain_crf_decoding = self.label_encoding is not None
        if constrain_crf_decoding and self.label_encoding is None:
            raise ValueError("constrain_crf_decoding needs a label_encoding (BIO, IOB1 or BIOES)")
        if constrain_crf_decoding:
            allowed, allowed_start, allowed_end = allowed_transitions_matrix(self.labels, self.label_encoding)
        else:
            allowed = torch.ones(num_labels, num_labels, dtype=torch.bool)
            allowed_start = allowed_end = torch.ones(num_labels, dtype=torch.bool)
        # Buffers, not parameters: they are part of the model's definition and move with it.
        self.register_buffer("allowed_transitions", allowed, persistent=False)
        self.register_buffer("allowed_start", allowed_start, persistent=False)
        self.register_buffer("allowed_end", allowed_end, persistent=False)

    def crf(self, emissions: torch.Tensor, mask: torch.Tensor) -> LinearChainCRF:
        """The model's distribution over tag sequences for these emissions."""
        minus_inf = float("-inf")
        if self.include_start_end_transitions:
            start, end = self.start_transitions, self.end_transitions
        else:
            start = end = self.transitions.new_zeros(len(self.labels))
        return LinearChainCRF(
            emissions,
            self.transitions.masked_fill(~self.allowed_transitions, minus_inf),
            mask,
            start=start.masked_fill(~self.allowed_start, minus_inf),
            end=end.masked_fill(~self.allowed_end, minus_inf),
        )

    def forward(
        self, words: dict[str, Any], mask: torch.Tensor, instances: list, tags: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        emissions = self.emissions(words, mask)
        crf = self.crf(emissions, mask)
        predicted, _ = crf.argmax()
        output = {
            "emissions": emissions,
            "transitions": crf.transitions,
            "start": crf.start,
            "end": crf.end,
            "label_vectors": self.tag_projection.weight,
            "mask": mask,
            "predicted_tags": predicted,
        }
        if tags is not None:
            # A sentence with a gold tag the model never saw (-1, see `tensorize`) has no likelihood.
            known = ((tags >= 0) | ~mask).all(-1)
            sentence_nll = crf.log_partition() - crf.log_score(tags.clamp(min=0))
            output["loss"] = (sentence_nll * known).sum() / mask.size(0)
            self.update_metrics(predicted, tags, mask, instances)
        return output
