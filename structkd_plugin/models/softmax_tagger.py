"""`softmax_tagger`: embedder -> encoder -> an independent softmax over labels at each token."""

from typing import Any

import torch

from structkd_plugin.models.model import Model
from structkd_plugin.models.tagger import SequenceTagger


@Model.register("softmax_tagger")
class SoftmaxTagger(SequenceTagger):
    """A locally normalized (MaxEnt) tagger: p(y|x) = prod_i softmax(e_i)(y_i).

    Its constructor arguments are exactly those of `SequenceTagger`. The loss is the tokens'
    negative log-likelihood summed per sentence and averaged over sentences, on the same scale as
    the CRF tagger's. Decoding takes each token's best label, so with a `label_encoding` the output
    may be ill-formed; spans are then read with conlleval's rules. For distillation its unary
    marginals are `emissions.softmax(-1)`.
    """

    def forward(
        self, words: dict[str, Any], mask: torch.Tensor, instances: list, tags: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        emissions = self.emissions(words, mask)
        predicted = emissions.argmax(-1).masked_fill(~mask, 0)
        output = {
            "emissions": emissions,
            "label_vectors": self.tag_projection.weight,
            "mask": mask,
            "predicted_tags": predicted,
        }
        if tags is not None:
            token_nll = torch.nn.functional.cross_entropy(
                emissions.transpose(1, 2), tags, reduction="none", ignore_index=-1  # -1: a tag the model never saw
            )
            output["loss"] = (token_nll * mask).sum() / mask.size(0)
            self.update_metrics(predicted, tags, mask, instances)
        return output
