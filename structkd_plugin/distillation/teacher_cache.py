"""A frozen teacher's knowledge, computed once and kept on disk in shards.

A frozen teacher gives the same marginals every epoch, so distillation precomputes them before
training and reads them back per batch. The cache of one dataset is a directory named by a hash
of everything its content depends on (the teacher archive's bytes, the data files' bytes, what the
objective needs, the temperature, K, the student's labels), so runs and seeds with the same
teacher and data share it, and anything that changes the content gets a new directory:

    <key>/index.json                  the shards, the sentence count, what was kept
    <key>/shard-00000/keys.json       the shard's sentences (file:line), in stored order
    <key>/shard-00000/<name>.npy      one array per stored tensor (float16 by default)

Sentences are sorted by length before they are cut into shards of `shard_size`, so a shard's
sentences are of similar length: the teacher runs on batches with little padding and the
head-indexed rows of a parser teacher are padded only to the shard's longest sentence.

**Scale.** Shards are written one at a time, atomically (a temporary directory renamed), so a
killed build resumes from its finished shards. In a `torchrun` launch every rank labels the
shards `rank, rank + world_size, ...`; rank 0 writes the index once all are done. Reading maps
the arrays into memory (`mmap`) and copies out only a batch's rows; the pages read are then
released (`MADV_DONTNEED`, they stay in the page cache), so the resident memory of a training
process does not grow with the corpus.

Pairwise marginals are L^2 numbers per token; `pairwise_top_k` keeps only the k largest of each
token (renormalized to sum to one) to bound the size.

For a parser student each word stores a row over its possible heads (arc marginals, arc scores:
n+1 numbers). Its relation distributions would take (n + 1) R numbers per word, so
`relation_top_k_heads` keeps them for each word's k most probable heads only (by the teacher's
arc marginals, or its local head softmax for `token`); the others read back as zero, which leaves
their relation terms, weighted by the small probability of those arcs, out of the loss.
"""

import hashlib
import json
import logging
import mmap
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from structkd_plugin.distillation.knowledge import TeacherKnowledge
from structkd_plugin.models.scores import TaggerScores
from structkd_plugin.progress import progress

# Per-token tensors stored concatenated along tokens; kbest_log_probs is per sentence.
_PER_TOKEN = (
    "unary", "pairwise", "token_probs", "kbest_tags", "emissions",
    "arcs", "local_arcs", "relations", "arc_scores", "kbest_relations", "relation_heads", "relation_values",
    "pairwise_values", "pairwise_indices",
)  # fmt: skip
# Per-token rows over the sentence's heads (0..n), whose width varies with the sentence.
HEAD_INDEXED = ("arcs", "local_arcs", "relations", "arc_scores")
_KBEST = ("kbest_tags", "kbest_relations")
# The teacher's own parameters, the same in every shard: read once.
_SHARED = ("transitions", "start", "end", "label_vectors", "pairwise_size")
INDEX_FORMAT = 2

logger = logging.getLogger(__name__)


def instance_key(instance: dict) -> str:
    """Where an instance comes from: its file and line (set by every reader), else its words."""
    metadata = instance.get("metadata", {})
    if "source" in metadata and "line" in metadata:
        return f"{metadata['source']}:{metadata['line']}"
    return " ".join(instance["words"])


def file_digest(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes; of a directory (a Hugging Face model), of its files' names and
    bytes, in name order."""
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            while chunk := handle.read(chunk_size):
                digest.update(chunk)
    return digest.hexdigest()


def cache_key(teacher_digests: list[str], data_files: list[str], description: dict) -> str:
    """The cache directory's name: a hash of the teachers, the data files' contents and
    `description` (what is stored, temperature, K, the student's labels, ...)."""
    digest = hashlib.sha256()
    for part in sorted(teacher_digests) + sorted(file_digest(path) for path in data_files):
        digest.update(part.encode())
    digest.update(json.dumps(description, sort_keys=True).encode())
    return digest.hexdigest()[:32]


class TeacherCache:
    """One dataset's teacher knowledge on disk, with vectorized per-batch lookup.

    Build it with `TeacherCache.build(...)` (or `load` a finished one); `lookup(instances)`
    returns the padded `TeacherKnowledge` of a batch, or None when some instance is not cached.
    """

    def __init__(self, directory: Path, index: dict) -> None:
        self.directory = directory
        self.info = index["info"]
        self.shards = [_Shard(directory / name) for name in index["shards"]]
        keys = [key for shard in self.shards for key in shard.keys]
        self.index = {key: i for i, key in enumerate(keys)}
        self.shard_of = np.concatenate([np.full(len(shard.keys), s) for s, shard in enumerate(self.shards)] or [np.zeros(0, int)])
        self.row_of = np.concatenate([np.arange(len(shard.keys)) for shard in self.shards] or [np.zeros(0, int)])
        self.lengths = np.concatenate([shard.lengths for shard in self.shards] or [np.zeros(0, int)])
        self.shared = self.shards[0].shared() if self.shards else {}

    def __len__(self) -> int:
        return len(self.index)

    # ------------------------------------------------------------------ writing

    @classmethod
    def build(
        cls,
        directory: Path,
        keys: Sequence[str],
        lengths: Sequence[int],
        knowledge_of: Callable[[list[int]], TeacherKnowledge],
        storage_dtype: torch.dtype = torch.float16,
        pairwise_top_k: int | None = None,
        relation_top_k_heads: int | None = None,
        shard_size: int = 4096,
        batch_size: int = 64,
    ) -> "TeacherCache":
        """Computes the knowledge of the sentences `keys` (of `lengths` words), `batch_size` at a
        time by `knowledge_of(positions)` (positions into `keys`, knowledge in that order), and
        stores it in shards under `directory`. Finished shards of an earlier, killed build are
        kept; in a distributed run each rank computes its share of the shards."""
        if len(keys) != len(lengths):
            raise ValueError(f"the teacher cache got {len(lengths)} lengths for {len(keys)} keys")
        rank, world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        order = sorted(range(len(keys)), key=lambda i: (lengths[i], keys[i]))
        shards = [order[start : start + shard_size] for start in range(0, len(order), shard_size)]
        names = [f"shard-{s:05d}" for s in range(len(shards))]
        todo = [s for s in range(rank, len(shards), world_size) if not (directory / names[s]).is_dir()]
        directory.mkdir(parents=True, exist_ok=True)
        # A killed build leaves the shard it was writing as a temporary directory: removed here,
        # by the rank that will write that shard again.
        leftovers = [path for s in todo for path in directory.glob(f".{names[s]}.*")]
        for leftover in leftovers:
            shutil.rmtree(leftover, ignore_errors=True)
        if leftovers:
            logger.warning("removed %d unfinished shard(s) of a killed build from %s", len(leftovers), directory)
        if todo:
            finished = len(range(rank, len(shards), world_size)) - len(todo)
            if finished:
                logger.info("the teacher cache %s has %d of this process's shards already: resuming", directory, finished)
            total = sum(len(shards[s]) for s in todo)
            with progress(None, "teacher cache", total, unit="sentences") as bar:
                for s in todo:
                    positions = shards[s]
                    batches = []
                    for start in range(0, len(positions), batch_size):
                        batch = positions[start : start + batch_size]
                        batches.append(knowledge_of(batch))
                        bar.update(len(batch))
                    tensors, info = _shard_tensors(batches, storage_dtype, pairwise_top_k, relation_top_k_heads)
                    _write_shard(directory / names[s], tensors, [keys[i] for i in positions], info)
        if dist.is_initialized():
            dist.barrier()
        if rank == 0:
            _write_index(directory, names, len(keys), pairwise_top_k, relation_top_k_heads)
        if dist.is_initialized():
            dist.barrier()
        cache = cls.load(directory)
        if cache is None:
            raise RuntimeError(f"the teacher cache {directory} was built but cannot be read")
        return cache

    @classmethod
    def load(cls, directory: Path) -> "TeacherCache | None":
        """The finished cache in `directory`, or None if there is none (or it is unreadable)."""
        try:
            index = json.loads((directory / "index.json").read_text(encoding="utf-8"))
            if index.get("format") != INDEX_FORMAT:
                return None
            return cls(directory, index)
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache is recomputed, never trusted

    # ------------------------------------------------------------------ reading

    def lookup(self, instances: list[dict]) -> TeacherKnowledge | None:
        """The padded knowledge of these instances, or None if any of them is not cached."""
        try:
            rows = np.array([self.index[instance_key(instance)] for instance in instances])
        except KeyError:
            return None
        shard_ids, local = self.shard_of[rows], self.row_of[rows]
        lengths = torch.from_numpy(self.lengths[rows])
        width = int(lengths.max())
        mask = torch.arange(width)[None, :] < lengths[:, None]
        gathered: dict[str, torch.Tensor] = {}
        for shard_id in np.unique(shard_ids):
            selected = np.nonzero(shard_ids == shard_id)[0]
            for name, values in self.shards[shard_id].read(local[selected], width).items():
                if name not in gathered:
                    gathered[name] = values.new_zeros(len(rows), *values.shape[1:])
                gathered[name][torch.from_numpy(selected)] = values
        return self._knowledge(gathered, mask)

    def _knowledge(self, gathered: dict[str, torch.Tensor], mask: torch.Tensor) -> TeacherKnowledge:
        knowledge = TeacherKnowledge(mask=mask)
        for name in ("unary", "token_probs", "pairwise", *HEAD_INDEXED):
            if name in gathered:
                setattr(knowledge, name, gathered[name])
        if "pairwise_values" in gathered:
            knowledge.pairwise = self._pruned_pairwise(gathered["pairwise_values"], gathered["pairwise_indices"], mask)
        if "kbest_tags" in gathered:
            knowledge.kbest_tags = gathered["kbest_tags"].transpose(1, 2)
            knowledge.kbest_log_probs = gathered["kbest_log_probs"]
        if "kbest_relations" in gathered:
            knowledge.kbest_relations = gathered["kbest_relations"].transpose(1, 2)
        if "relation_values" in gathered:
            values = gathered["relation_values"]
            heads = gathered["relation_heads"][..., None].expand_as(values)
            # Padding entries point at head 0 with zero values: adding them changes nothing.
            knowledge.relations = values.new_zeros(*mask.shape, mask.size(1) + 1, values.size(-1)).scatter_add_(2, heads, values)
        if "emissions" in gathered:
            knowledge.scores = TaggerScores(
                emissions=gathered["emissions"],
                mask=mask,
                **{name: self.shared[name].float() for name in ("transitions", "start", "end", "label_vectors") if name in self.shared},
            )
        return knowledge

    def _pruned_pairwise(self, values: torch.Tensor, indices: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        size = int(self.shared["pairwise_size"])
        labels = int(round(size**0.5))
        total = values.sum(-1, keepdim=True)
        values = torch.where(total > 0, values / total.clamp_min(1e-30), values)  # the kept mass sums to one
        dense = values.new_zeros(*mask.shape, size).scatter_(-1, indices, values)
        dense = dense * mask[..., None]
        dense[:, 0] = 0  # entry 0 has no previous tag
        return dense.view(*mask.shape, labels, labels)


class _Shard:
    """One shard's arrays, memory-mapped; `read` copies out some sentences' rows."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.keys = json.loads((directory / "keys.json").read_text(encoding="utf-8"))
        self.lengths = np.load(directory / "lengths.npy")
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.names = sorted(path.stem for path in directory.glob("*.npy") if path.stem != "lengths")
        self._maps: dict[str, tuple[mmap.mmap, np.ndarray]] = {}

    def shared(self) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(np.load(self.directory / f"{name}.npy")) for name in self.names if name in _SHARED}

    def _array(self, name: str) -> tuple[mmap.mmap, np.ndarray]:
        if name not in self._maps:
            with open(self.directory / f"{name}.npy", "rb") as file:
                version = np.lib.format.read_magic(file)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran_order, dtype = read_header(file)
                offset = file.tell()
                mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            if fortran_order:
                raise ValueError(f"{self.directory / name}.npy is not in C order")
            self._maps[name] = (mapped, np.ndarray(shape, dtype, buffer=mapped, offset=offset))
        return self._maps[name]

    def read(self, rows: np.ndarray, width: int) -> dict[str, torch.Tensor]:
        """The stored tensors of the sentences `rows`, padded to `width` words (head-indexed rows
        to `width + 1` heads); floats as float32, integers as int64, zero on padding."""
        lengths = self.lengths[rows]
        positions = np.arange(width)
        mask = positions[None, :] < lengths[:, None]
        flat = np.where(mask, self.offsets[rows][:, None] + positions[None, :], 0)
        out = {}
        for name in self.names:
            if name in _SHARED:
                continue
            mapped, array = self._array(name)
            if name == "kbest_log_probs":
                values = torch.from_numpy(np.array(array[rows]))
            else:
                values = torch.from_numpy(np.array(array[flat]))
                values = values * torch.from_numpy(mask).view(*mask.shape, *([1] * (values.dim() - 2))).to(values.dtype)
                if name in HEAD_INDEXED:
                    values = pad_dim(values[:, :, : width + 1], 2, width + 1)
            out[name] = values.float() if values.is_floating_point() else values.long()
            # The pages just read leave this process's resident memory (the page cache keeps them).
            mapped.madvise(mmap.MADV_DONTNEED)
        return out


def _shard_tensors(
    batches: list[TeacherKnowledge], storage_dtype: torch.dtype, pairwise_top_k: int | None, relation_top_k_heads: int | None
) -> tuple[dict[str, torch.Tensor], dict]:
    """One shard's tensors from its knowledge batches: per-token rows concatenated, head rows
    padded to the shard's longest sentence, pruned as asked, floats in `storage_dtype`."""
    parts: dict[str, list[torch.Tensor]] = {}
    shared: dict[str, torch.Tensor] = {}
    lengths = []
    for knowledge in batches:
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
                parts.setdefault(name, []).append(tensor.detach().cpu())
            else:  # the teacher's transitions, start, end, label vectors: the same for every batch
                shared[name] = tensor.detach().cpu()
    for name in HEAD_INDEXED:
        if name in parts:
            width = max(chunk.size(1) for chunk in parts[name])
            parts[name] = [pad_dim(chunk, 1, width) for chunk in parts[name]]
    tensors = {name: torch.cat(chunks) for name, chunks in parts.items()}
    tensors.update(shared)
    tensors["lengths"] = torch.cat(lengths).cpu()
    if pairwise_top_k is not None and "pairwise" in tensors:
        flat = tensors.pop("pairwise").flatten(start_dim=1)
        values, indices = flat.topk(min(pairwise_top_k, flat.size(-1)), dim=-1)
        tensors["pairwise_values"], tensors["pairwise_indices"] = values, indices.to(torch.int32)
        tensors["pairwise_size"] = torch.tensor(flat.size(-1))
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and name != "kbest_log_probs":
            tensors[name] = tensor.to(storage_dtype)
    info = {}
    if "relation_values" in tensors:
        info["arc_mass_kept"], info["arc_mass"] = _arc_mass(tensors)
    return tensors, info


def _write_shard(directory: Path, tensors: dict[str, torch.Tensor], keys: list[str], info: dict) -> None:
    """Writes a shard into a temporary directory, then renames it: a shard directory that exists
    is complete."""
    temporary = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        for name, tensor in tensors.items():
            np.save(temporary / f"{name}.npy", tensor.contiguous().numpy())
        (temporary / "keys.json").write_text(json.dumps(keys), encoding="utf-8")
        (temporary / "info.json").write_text(json.dumps(info), encoding="utf-8")
        os.rename(temporary, directory)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


def _write_index(directory: Path, names: list[str], sentences: int, pairwise_top_k: int | None, relation_top_k_heads: int | None) -> None:
    info: dict = {"pairwise_top_k": pairwise_top_k, "relation_top_k_heads": relation_top_k_heads, "sentences": sentences}
    shard_infos = [json.loads((directory / name / "info.json").read_text(encoding="utf-8")) for name in names]
    if any("arc_mass" in shard for shard in shard_infos):
        kept = sum(shard["arc_mass_kept"] for shard in shard_infos)
        info["relation_arc_mass_kept"] = kept / max(sum(shard["arc_mass"] for shard in shard_infos), 1e-30)
        logger.info(
            "relation distributions kept for each word's %d likeliest heads: %.4f%% of the teacher's arc mass",
            relation_top_k_heads, 100 * info["relation_arc_mass_kept"],
        )  # fmt: skip
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".index.")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        json.dump({"format": INDEX_FORMAT, "shards": names, "info": info}, file)
    os.replace(temporary, directory / "index.json")


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
    return {"relation_heads": pad_dim(heads, 2, k).to(torch.int32), "relation_values": pad_dim(values, 2, k)}


def _arc_mass(tensors: dict[str, torch.Tensor]) -> tuple[float, float]:
    """The teacher's arc probability on the heads whose relations the cache keeps, and in all."""
    # In float64: a treebank's sum overflows the float16 the cache stores.
    weights = (tensors["arcs"] if "arcs" in tensors else tensors["local_arcs"]).double()
    real = tensors["relation_values"].sum(-1) > 0  # padding entries are all zero
    kept = (weights.gather(1, tensors["relation_heads"].long()) * real).sum()
    return float(kept), float(weights.sum())


def _per_token(name: str, tensor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keeps the real tokens of a padded `[B, n, ...]` tensor (`[B, K, n]` for k-best tags)."""
    if name in _KBEST:
        tensor = tensor.transpose(1, 2)
    return tensor[mask].detach().cpu()


def pad_dim(tensor: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Zero-pads `tensor` along `dim` to `size`."""
    pad = [0, 0] * (tensor.dim() - dim - 1) + [0, size - tensor.size(dim)]
    return torch.nn.functional.pad(tensor, pad)
