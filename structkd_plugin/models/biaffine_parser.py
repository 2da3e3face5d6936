"""`biaffine_parser`: embedder -> encoder (with a root) -> MLPs -> biaffine arc and relation scores."""

from typing import Any

import torch
from allennlp_light import Seq2SeqEncoder
from allennlp_light.modules import FeedForward
from allennlp_light.modules.seq2seq_encoders import PassThroughEncoder
from tango.common import Lazy

from structkd_plugin.data import Vocabulary, pad_sequences
from structkd_plugin.models.dependency_parser import DependencyParser
from structkd_plugin.models.model import Instance, Model
from structkd_plugin.models.scores import ParserScores
from structkd_plugin.modules import TextEmbedder
from structkd_plugin.modules.biaffine import Biaffine
from structkd_plugin.structures import NonProjectiveTree, ProjectiveTree, gather_heads, head_selection_log_probs

TREES = ("local", "nonprojective", "projective")


@Model.register("biaffine_parser")
class BiaffineParser(DependencyParser):
    """The deep biaffine dependency parser (Dozat & Manning 2017), with a choice of tree model.

    Words are embedded (plus an optional UPOS embedding), a learned root vector is put before the
    first word, and the encoder contextualizes the sequence root + words. Four MLPs give every
    position a vector as a head and as a dependent, for arcs and for relations; a biaffine layer
    scores each arc h -> d and a bilinear one each relation of each arc.

    # Parameters

    vocab : `Vocabulary`
        Sizes the embeddings, the UPOS embedding and the relation label space.
    text_embedder : `TextEmbedder`
        Turns words into vectors, built lazily with the vocabulary as in `SequenceTagger`.
    encoder : `Seq2SeqEncoder`, optional
        Contextualizes root + words (any allennlp-light encoder, e.g. `lstm`); none by default.
    pos_embedding_dim : `int`, optional
        Also embed the instances' gold `upos` with vectors of this size (concatenated to the word
        vectors); every instance must then have `upos`. A UPOS tag the vocabulary lacks gets a
        shared vector of its own.
    arc_mlp_dim : `int`
        Output size of the arc head and dependent MLPs.
    relation_mlp_dim : `int`
        Output size of the relation head and dependent MLPs.
    mlp_dropout : `float`
        Dropout on the MLPs' outputs.
    dropout : `float`
        Dropout on the embeddings and on the encoder's output.
    tree : `str`
        How arc scores become a distribution over heads, which sets the arc loss:

        - "local": a softmax over the heads of each word, the loss its cross-entropy (Dozat &
          Manning);
        - "nonprojective": a tree CRF over single-root non-projective trees (Matrix-Tree
          theorem), the loss -log p(gold tree);
        - "projective": a tree CRF over single-root projective trees (Eisner's algorithm).

        With a tree CRF, sentences whose gold tree is outside its support (several root children,
        or crossing arcs under "projective") get no arc loss, since -log p would be unbounded.
        Decoding is always a well-formed single-root tree: Eisner's best projective tree for
        "projective", the maximum spanning tree otherwise.
    relation_namespace : `str`, exclude_punctuation_from_metrics : `bool`
        See `DependencyParser`.

    Losses are summed over the words of a sentence and averaged over sentences (the scale of
    the taggers' losses): arc loss + relation loss, the latter the cross-entropy of the gold
    relation given the gold head.

    `forward`'s output, for decoding and distillation, with `n` the longest sentence:

    - `arc_scores [B, n+1, n+1]`: `[b, h, d]` scores h -> d, position 0 the root (the convention
      of `structures/`);
    - `relation_scores [B, n+1, n+1, R]`: `[b, h, d, r]` = log p(relation r | arc h -> d);
    - `mask [B, n+1]`: True on the root and the words;
    - `predicted_heads`, `predicted_relations` `[B, n]`: the decoded tree over the words (heads 0
      = root, as in the instances; 0 on padding);
    - `loss` with gold trees.

    Head marginals are not in the output, since the tree CRFs' need a backward pass through
    log Z: `head_marginals(output)` computes them (the local softmax for "local").
    """

    def __init__(
        self,
        vocab: Vocabulary,
        text_embedder: Lazy[TextEmbedder],
        encoder: Seq2SeqEncoder | None = None,
        pos_embedding_dim: int | None = None,
        arc_mlp_dim: int = 500,
        relation_mlp_dim: int = 100,
        mlp_dropout: float = 0.33,
        dropout: float = 0.33,
        tree: str = "local",
        relation_namespace: str = "deprels",
        exclude_punctuation_from_metrics: bool = False,
    ) -> None:
        super().__init__(vocab, relation_namespace, exclude_punctuation_from_metrics)
        if tree not in TREES:
            raise ValueError(f"tree must be one of {TREES}, not {tree!r}")
        self.tree_kind = tree
        self.text_embedder = text_embedder.construct(vocab=vocab)
        embedding_dim = self.text_embedder.get_output_dim()
        self.pos_embedding = None
        if pos_embedding_dim:
            # One extra row for UPOS tags the vocabulary lacks (its namespace has no unknown).
            self.upos_index = {vocab.get_token_from_index(i, "upos"): i for i in range(vocab.get_vocab_size("upos"))}
            self.pos_embedding = torch.nn.Embedding(len(self.upos_index) + 1, pos_embedding_dim)
            embedding_dim += pos_embedding_dim
        self.root = torch.nn.Parameter(torch.randn(embedding_dim))
        self.encoder = encoder or PassThroughEncoder(embedding_dim)
        if self.encoder.get_input_dim() != embedding_dim:
            raise ValueError(
                f"the encoder expects inputs of size {self.encoder.get_input_dim()} but the embeddings "
                f"(words{' and UPOS' if pos_embedding_dim else ''}) give {embedding_dim}"
            )
        self.dropout = torch.nn.Dropout(dropout)
        self.mlp_dropout = mlp_dropout
        self.arc_head_mlp, self.arc_dependent_mlp = self.mlp(arc_mlp_dim), self.mlp(arc_mlp_dim)
        self.relation_head_mlp, self.relation_dependent_mlp = self.mlp(relation_mlp_dim), self.mlp(relation_mlp_dim)
        # The head side has no bias: a term in the dependent alone is the same for all of its
        # heads, so it would change no distribution.
        self.arc_attention = Biaffine(arc_mlp_dim, 1, bias_x=False, bias_y=True)
        self.relation_attention = Biaffine(relation_mlp_dim, len(self.relations))

    def mlp(self, output_dim: int) -> FeedForward:
        """A one-layer MLP (LeakyReLU, dropout) over the encoder's output, as Dozat & Manning's."""
        return FeedForward(self.encoder.get_output_dim(), 1, output_dim, torch.nn.LeakyReLU(0.1), self.mlp_dropout)

    def tensorize(self, instances: list[Instance]) -> dict[str, Any]:
        words = [instance["words"] for instance in instances]
        _, mask = pad_sequences([[1] * len(sentence) for sentence in words], 0)
        batch: dict[str, Any] = {"words": self.text_embedder.tensorize(words), "mask": mask, "instances": instances}
        if self.pos_embedding is not None:
            if not all("upos" in instance for instance in instances):
                raise ValueError("this parser embeds UPOS tags (pos_embedding_dim), but an instance has no upos")
            unknown = len(self.upos_index)
            batch["upos"], _ = pad_sequences(
                [[self.upos_index.get(tag, unknown) for tag in instance["upos"]] for instance in instances], 0
            )
        batch.update(self.gold_trees(instances))
        return batch

    def encode(
        self, words: dict[str, Any], mask: torch.Tensor, upos: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoded root + words `[B, n+1, encoder dim]` and their mask `[B, n+1]`."""
        embedded = self.text_embedder(words, mask)
        if self.pos_embedding is not None:
            embedded = torch.cat([embedded, self.pos_embedding(upos)], -1)
        root = self.root.expand(embedded.shape[0], 1, -1)
        embedded = self.dropout(torch.cat([root, embedded], 1))
        tree_mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], 1)
        return self.dropout(self.encoder(embedded, tree_mask)), tree_mask

    def first_order_scores(self, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`arc_scores [B, n+1, n+1]` and `relation_scores [B, n+1, n+1, R]` (log-probabilities)."""
        arc_scores = self.arc_attention(self.arc_head_mlp(encoded), self.arc_dependent_mlp(encoded)).squeeze(-1)
        relation_scores = self.relation_attention(
            self.relation_head_mlp(encoded), self.relation_dependent_mlp(encoded)
        ).log_softmax(-1)
        return arc_scores, relation_scores

    def tree(self, arc_scores: torch.Tensor, mask: torch.Tensor) -> NonProjectiveTree | ProjectiveTree:
        """The single-root tree distribution the parser decodes with (and, unless `tree` is
        "local", trains): projective for "projective", non-projective otherwise."""
        tree_class = ProjectiveTree if self.tree_kind == "projective" else NonProjectiveTree
        return tree_class(arc_scores, mask, single_root=True)

    def head_marginals(self, output: dict[str, torch.Tensor]) -> torch.Tensor:
        """P(h -> d) `[B, n+1, n+1]` for `forward`'s output: under the tree CRF, or each word's
        softmax over its heads for "local". Zero into the root, on the diagonal and on padding;
        differentiable with respect to `output["arc_scores"]`."""
        if self.tree_kind == "local":
            return head_selection_log_probs(output["arc_scores"], output["mask"]).exp()
        return self.tree(output["arc_scores"], output["mask"]).marginals()

    def scores(self, output: dict[str, Any]) -> ParserScores:
        return ParserScores(
            arc_scores=output["arc_scores"],
            relation_scores=output["relation_scores"],
            mask=output["mask"],
            tree=self.tree_kind,
            relations=tuple(self.relations),
        )

    def forward(
        self,
        words: dict[str, Any],
        mask: torch.Tensor,
        instances: list,
        upos: torch.Tensor | None = None,
        heads: torch.Tensor | None = None,
        relations: torch.Tensor | None = None,
        punctuation: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        encoded, tree_mask = self.encode(words, mask, upos)
        arc_scores, relation_scores = self.first_order_scores(encoded)
        tree = self.tree(arc_scores, tree_mask)
        output = {"arc_scores": arc_scores, "relation_scores": relation_scores, "mask": tree_mask}
        output.update(self.predict(tree.argmax(), relation_scores, mask))
        if heads is not None:
            if self.tree_kind == "local":
                log_probs = head_selection_log_probs(arc_scores, tree_mask)
                # Padding reads -inf (no head), hence masked_fill rather than a product with the mask.
                arc_loss = -gather_heads(log_probs, heads).masked_fill(~mask, 0.0).sum() / mask.shape[0]
            else:
                gold_score = (gather_heads(arc_scores, heads) * mask).sum(-1)
                in_support = gold_tree_in_support(heads, mask, self.tree_kind == "projective")
                arc_loss = (tree.log_partition() - gold_score).masked_fill(~in_support, 0.0).sum() / mask.shape[0]
            self.add_loss_and_metrics(output, arc_loss, heads, relations, mask, punctuation)
        return output

    def add_loss_and_metrics(
        self,
        output: dict[str, torch.Tensor],
        arc_loss: torch.Tensor,
        heads: torch.Tensor,
        relations: torch.Tensor,
        mask: torch.Tensor,
        punctuation: torch.Tensor,
    ) -> None:
        """Sets `output["loss"]` (the arc loss plus the relation loss) and updates the metrics
        with the output's predictions."""
        output["loss"] = arc_loss + self.relation_loss(output["relation_scores"], heads, relations, mask)
        predicted_heads, predicted_relations = output["predicted_heads"], output["predicted_relations"]
        self.update_metrics(predicted_heads, predicted_relations, heads, relations, mask, punctuation)

    def predict(
        self, tree_heads: torch.Tensor, relation_scores: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """`predicted_heads` and `predicted_relations` `[B, n]` from decoded heads `[B, n+1]`
        (the trees' convention): each word's best relation given its predicted head."""
        predicted_heads = tree_heads[:, 1:]
        predicted_relations = gather_heads(relation_scores, predicted_heads).argmax(-1).masked_fill(~mask, 0)
        return {"predicted_heads": predicted_heads, "predicted_relations": predicted_relations}

    @staticmethod
    def relation_loss(
        relation_scores: torch.Tensor, heads: torch.Tensor, relations: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """-log p(gold relation | gold head), summed over words, averaged over sentences; relations
        the vocabulary lacks (-1) are left out."""
        known = mask & (relations >= 0)
        log_probs = gather_heads(relation_scores, heads).gather(-1, relations.clamp_min(0)[..., None]).squeeze(-1)
        return -(log_probs * known).sum() / mask.shape[0]


def gold_tree_in_support(heads: torch.Tensor, mask: torch.Tensor, projective: bool) -> torch.Tensor:
    """`[B]` bool, True where the gold tree (`heads [B, n]`) has one root child and, if
    `projective`, no crossing arcs (the root at position 0): the trees a single-root tree CRF
    gives a probability to."""
    single_root = ((heads == 0) & mask).sum(-1) == 1
    if not projective:
        return single_root
    dependent = torch.arange(1, heads.shape[1] + 1, device=heads.device).expand_as(heads)
    left, right = torch.minimum(heads, dependent), torch.maximum(heads, dependent)
    # Arcs (l1, r1) and (l2, r2) cross when l1 < l2 < r1 < r2.
    left_1, right_1, left_2, right_2 = left[:, :, None], right[:, :, None], left[:, None, :], right[:, None, :]
    crossing = (left_1 < left_2) & (left_2 < right_1) & (right_1 < right_2) & mask[:, :, None] & mask[:, None, :]
    return single_root & ~crossing.flatten(1).any(-1)
