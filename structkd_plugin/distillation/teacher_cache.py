"""A frozen teacher's knowledge, computed once and kept on disk.

A frozen teacher gives the same marginals every epoch, so distillation precomputes them before
training and reads them back per batch. One cache file holds one dataset's `TeacherKnowledge`,
sentence after sentence, concatenated along tokens (safetensors, float16 by default), with the
instances' keys in a JSON sidecar. Its name is a hash of everything the content depends on: the
teacher archive's bytes, the data files' bytes, what the objective needs, the temperature, K and
the student's labels; so runs and seeds with the same teacher and data share it, and anything that
changes the content gets a new file.

Pairwise marginals are L^2 numbers per token; `pairwise_top_k` keeps only the k largest of each
token (renormalized to sum to one) to bound memory.

For a parser student each word stores a row over its possible heads (arc marginals, arc scores:
n+1 numbers), padded to the longest sentence of the dataset. Its relation distributions would take
(longest + 1) R numbers per word (3 GB for English-EWT), so `relation_top_k_heads` keeps them for
each word's k most probable heads only (by the teacher's arc marginals, or its local head softmax
for `token`); the others read back as zero, which leaves their relation terms, weighted by the
small probability of those arcs, out of the loss.
"""

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from structkd_plugin.distillation.knowledge import TaggerScores, TeacherKnowledge

# Per-token tensors stored concatenated along tokens; kbest_log_probs is per sentence.
_PER_TOKEN = (
    "unary", "pairwise", "token_probs", "kbest_tags", "emissions",
    "arcs", "local_arcs", "relations", "arc_scores", "kbest_relations", "relation_heads", "relation_values",
)  # fmt: skip
# Per-token rows over the sentence's heads (0..n), whose width varies with the sentence.
HEAD_INDEXED = ("arcs", "local_arcs", "relations", "arc_scores")
_KBEST = ("kbest_tags", "kbest_relations")

logger = logging.getLogger(__name__)


def instance_key(instance: dict) -> str:
    """Where an instance comes from: its file and line (set by every reader), else its words."""
    metadata = instance.get("metadata", {})
    if "source" in metadata and "line" in metadata:
        return f"{metadata['source']}:{metadata['line']}"
    return " ".join(instance["words"])


def file_digest(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(teacher_digests: list[str], data_files: list[str], description: dict) -> str:
    """The cache file's name: a hash of the teachers, the data files' contents and `description`
    (what is stored, temperature, K, the student's labels, ...)."""
    digest = hashlib.sha256()
    for part in sorted(teacher_digests) + sorted(file_digest(path) for path in data_files):
        digest.update(part.encode())
    digest.update(json.dumps(description, sort_keys=True).encode())
    return digest.hexdigest()[:32]


class TeacherCache:
    """One dataset's teacher knowledge, in memory, with vectorized per-batch lookup.

    Build it with `TeacherCache.build(...)` (or `load`); `lookup(instances)` returns the padded
    `TeacherKnowledge` of a batch, or None when some instance is not cached.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], keys: list[str], info: dict) -> None:
        self.tensors = tensors
        self.index = {key: i for i, key in enumerate(keys)}
        self.keys = keys
        self.info = info
        lengths = tensors["lengths"]
        self.offsets = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])

    # ------------------------------------------------------------------ writing

    @classmethod
    def build(
        cls,
        path: Path,
        keys: list[str],
        knowledge_batches,
        storage_dtype: torch.dtype = torch.float16,
        pairwise_top_k: int | None = None,
        relation_top_k_heads: int | None = None,
    ) -> "TeacherCache":
        """Concatenates `knowledge_batches` (an iterable of TeacherKnowledge, in the order of
        `keys`), stores them atomically at `path`, and returns the cache."""
        parts: dict[str, list[torch.Tensor]] = {}
        shared: dict[str, torch.Tensor] = {}
        lengths = []
        for knowledge in knowledge_batches:
            mask = knowledge.mask
            lengths.append(mask.sum(-1))
            tensors = _flatten(knowledge)
            if relation_top_k_heads is not None and "relations" in tensors:
                tensors.update(_top_heads_relations(knowledge, relation_top_k_heads))
                del tensors["relations"]
            for name, tensor in tensors.items():
                if name in _PER_TOKEN:
                    parts.setdefault(name, []).append(_per_token(name, tensor, mask))
                elif name == "kbest_log_probs":
                    parts.setdefault(name, []).append(tensor)
                else:  # the teacher's transitions, start, end, label vectors: the same for every batch
                    shared[name] = tensor
        for name in HEAD_INDEXED:
            if name in parts:
                width = max(chunk.size(1) for chunk in parts[name])
                parts[name] = [pad_dim(chunk, 1, width) for chunk in parts[name]]
        tensors = {name: torch.cat(chunks) for name, chunks in parts.items()}
        tensors.update(shared)
        tensors["lengths"] = torch.cat(lengths)
        if len(keys) != tensors["lengths"].numel():
            raise ValueError(f"the teacher cache got {tensors['lengths'].numel()} sentences for {len(keys)} keys")
        if pairwise_top_k is not None and "pairwise" in tensors:
            flat = tensors.pop("pairwise").flatten(start_dim=1)
            values, indices = flat.topk(min(pairwise_top_k, flat.size(-1)), dim=-1)
            tensors["pairwise_values"], tensors["pairwise_indices"] = values, indices.to(torch.int32)
            tensors["pairwise_size"] = torch.tensor(flat.size(-1))
        for name, tensor in tensors.items():
            if tensor.is_floating_point() and name != "kbest_log_probs":
                tensors[name] = tensor.to(storage_dtype)
        tensors = {name: tensor.contiguous() for name, tensor in tensors.items()}
        info = {"pairwise_top_k": pairwise_top_k, "relation_top_k_heads": relation_top_k_heads, "sentences": len(keys)}
        if "relation_values" in tensors:
            info["relation_arc_mass_kept"] = _arc_mass_kept(tensors)
            logger.info(
                "relation distributions kept for each word's %d likeliest heads: %.4f%% of the teacher's arc mass",
                relation_top_k_heads, 100 * info["relation_arc_mass_kept"],
            )  # fmt: skip
        _save_atomically(path, tensors, keys, info)
        return cls(tensors, keys, info)

    @classmethod
    def load(cls, path: Path) -> "TeacherCache | None":
        """The cache stored at `path`, or None if there is none (or it is unreadable)."""
        sidecar = path.with_suffix(".json")
        if not (path.exists() and sidecar.exists()):
            return None
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            return cls(load_file(str(path)), meta["keys"], meta["info"])
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache is recomputed, never trusted

    # ------------------------------------------------------------------ reading

    def lookup(self, instances: list[dict]) -> TeacherKnowledge | None:
        """The padded knowledge of these instances, or None if any of them is not cached."""
        try:
            rows = torch.tensor([self.index[instance_key(instance)] for instance in instances])
        except KeyError:
            return None
        lengths = self.tensors["lengths"][rows]
        positions = torch.arange(int(lengths.max()))
        mask = positions[None, :] < lengths[:, None]
        # Flat token index of every (sentence, position); padding points at token 0 and is zeroed.
        flat = torch.where(mask, self.offsets[rows][:, None] + positions[None, :], 0)
        knowledge = TeacherKnowledge(mask=mask)

        def tokens(name: str) -> torch.Tensor:
            values = self.tensors[name][flat]
            values = values.float() if values.is_floating_point() else values.long()
            return values * mask.view(*mask.shape, *([1] * (values.dim() - 2))).to(values.dtype)

        if "unary" in self.tensors:
            knowledge.unary = tokens("unary")
        if "token_probs" in self.tensors:
            knowledge.token_probs = tokens("token_probs")
        if "pairwise" in self.tensors:
            knowledge.pairwise = tokens("pairwise")
        elif "pairwise_values" in self.tensors:
            knowledge.pairwise = self._pruned_pairwise(flat, mask, knowledge.unary)
        if "kbest_tags" in self.tensors:
            knowledge.kbest_tags = tokens("kbest_tags").transpose(1, 2)
            knowledge.kbest_log_probs = self.tensors["kbest_log_probs"][rows].float()
        if "kbest_relations" in self.tensors:
            knowledge.kbest_relations = tokens("kbest_relations").transpose(1, 2)
        for name in HEAD_INDEXED:
            if name in self.tensors:
                setattr(knowledge, name, tokens(name)[:, :, : mask.size(1) + 1])
        if "relation_values" in self.tensors:
            values = tokens("relation_values")
            heads = tokens("relation_heads")[..., None].expand_as(values)
            # Padding entries point at head 0 with zero values: adding them changes nothing.
            knowledge.relations = values.new_zeros(*mask.shape, mask.size(1) + 1, values.size(-1)).scatter_add_(2, heads, values)
        if "emissions" in self.tensors:
            knowledge.scores = TaggerScores(
                emissions=tokens("emissions"),
                mask=mask,
                **{name: self.tensors[name].float() for name in ("transitions", "start", "end", "label_vectors") if name in self.tensors},
            )
        return knowledge

    def _pruned_pairwise(self, flat: torch.Tensor, mask: torch.Tensor, unary: torch.Tensor | None) -> torch.Tensor:
        size = int(self.tensors["pairwise_size"])
        labels = int(round(size**0.5))
        values = self.tensors["pairwise_values"][flat].float()
        total = values.sum(-1, keepdim=True)
        values = torch.where(total > 0, values / total.clamp_min(1e-30), values)  # the kept mass sums to one
        dense = values.new_zeros(*flat.shape, size).scatter_(-1, self.tensors["pairwise_indices"][flat].long(), values)
        dense = dense * mask[..., None]
        dense[:, 0] = 0  # entry 0 has no previous tag
        return dense.view(*flat.shape, labels, labels)


def _flatten(knowledge: TeacherKnowledge) -> dict[str, torch.Tensor]:
    """The knowledge's tensors by storage name (the teacher's scores stored beside the marginals)."""
    tensors = {name: tensor for name, tensor in knowledge.tensors().items() if name != "mask"}
    if knowledge.scores is not None:
        scores = knowledge.scores
        tensors["emissions"] = scores.emissions
        for name in ("transitions", "start", "end", "label_vectors"):
            if getattr(scores, name) is not None:
                tensors[name] = getattr(scores, name)
    return tensors


def _top_heads_relations(knowledge: TeacherKnowledge, k: int) -> dict[str, torch.Tensor]:
    """Each word's relation distributions `[B, n, n+1, R]` for its k most probable heads only:
    `relation_heads [B, n, k]` and `relation_values [B, n, k, R]` (head 0 with zero values where
    a sentence has fewer than k heads of nonzero probability)."""
    weights = knowledge.arcs if knowledge.arcs is not None else knowledge.local_arcs
    if weights is None:
        raise ValueError("pruning relation distributions to the likeliest heads needs the teacher's arc marginals or local head softmax")
    relations = knowledge.relations
    kept = min(k, relations.size(2))
    top = weights.topk(kept, dim=-1)
    # Heads of no weight (past a short sentence's end in a padded batch) become padding entries.
    heads = top.indices * (top.values > 0)
    values = relations.gather(2, heads[..., None].expand(-1, -1, -1, relations.size(-1))) * (top.values > 0)[..., None]
    return {"relation_heads": pad_dim(heads, 2, k), "relation_values": pad_dim(values, 2, k)}


def _arc_mass_kept(tensors: dict[str, torch.Tensor]) -> float:
    """The share of the teacher's arc probability on the heads whose relations the cache keeps."""
    # In float64: a treebank's sum overflows the float16 the cache stores.
    weights = (tensors["arcs"] if "arcs" in tensors else tensors["local_arcs"]).double()
    real = tensors["relation_values"].sum(-1) > 0  # padding entries are all zero
    kept = (weights.gather(1, tensors["relation_heads"].long()) * real).sum()
    return float(kept / weights.sum())


def _per_token(name: str, tensor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keeps the real tokens of a padded `[B, n, ...]` tensor (`[B, K, n]` for k-best tags)."""
    if name in _KBEST:
        tensor = tensor.transpose(1, 2)
    return tensor[mask].detach().cpu()


def pad_dim(tensor: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Zero-pads `tensor` along `dim` to `size`."""
    pad = [0, 0] * (tensor.dim() - dim - 1) + [0, size - tensor.size(dim)]
    return torch.nn.functional.pad(tensor, pad)


def _save_atomically(path: Path, tensors: dict[str, torch.Tensor], keys: list[str], info: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, write in (
        (path, lambda tmp: save_file(tensors, tmp)),
        (path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps({"keys": keys, "info": info}), encoding="utf-8")),
    ):
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(handle)
        try:
            write(tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
