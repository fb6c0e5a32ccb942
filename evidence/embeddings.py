"""The embedding store: sentence embeddings computed once per text and kept on disk.

Semantic re-ranking (``evidence.semantic``) needs a vector per study; encoding the 5,183
SciFact abstracts takes minutes on a CPU, so the vectors are kept in a folder (by default
``<INDEX_DIR>/embeddings/<model name>/``) and only texts the store lacks are encoded.

Each vector is keyed by the sha256 of the exact text that was embedded: a study whose
title or abstract changes has a new key and is embedded again, an unchanged one never is.
Vectors of texts no longer in use stay (they cost 768 bytes each at float16 and come back
into use if a text is restored).

Layout::

    store.json              format, model, dimension, dtype, count, and the two files
                            in force (replaced atomically)
    keys-<token>.npy        (n,) ``S32``: the sha256 digests, sorted (binary search)
    vectors-<token>.npy     (n, dim) float16: row i is the vector of keys[i]
    .lock                   writers take turns (``ranking_index.writer_lock``)

Both arrays are opened memory-mapped, so opening a store costs milliseconds and a lookup
reads only the rows it needs. :meth:`EmbeddingStore.save` writes new files beside the old
ones and switches ``store.json`` with one ``os.replace``; under the lock it first merges
what another process saved meanwhile, so two processes adding vectors lose none. A save
rewrites the whole store, which is fine up to a few million vectors.

This module needs only numpy: the model is loaded by ``evidence.semantic``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evidence.errors import EmbeddingStoreError
from evidence.ranking_index import writer_lock

__all__ = [
    "FORMAT",
    "MODEL_NAME",
    "EmbeddingStore",
    "store_path",
    "text_key",
]

FORMAT = 1
MODEL_NAME = "all-MiniLM-L6-v2"
"""The bundled sentence model (``evidence.semantic``); names the store's folder."""

META = "store.json"
_KEY = np.dtype("S32")
_OPEN_TRIES = 3  # a writer may remove the files named by the store.json just read


def store_path(index_dir: Path, model: str = MODEL_NAME) -> Path:
    """The embedding store folder of a model under an index folder.

    Parameters
    ----------
    index_dir : pathlib.Path
        The ranking index folder (``INDEX_DIR``).
    model : str
        The model's name.

    Returns
    -------
    pathlib.Path
        ``index_dir / "embeddings" / model``.
    """
    return index_dir / "embeddings" / model


def text_key(text: str) -> bytes:
    """The store's key for a text: the sha256 digest of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingStore:
    """Vectors keyed by the sha256 of the text they embed, persisted in a folder.

    Parameters
    ----------
    path : pathlib.Path
        The store's folder (created on the first :meth:`save`).
    model : str
        The model's name, recorded in ``store.json``; opening a store of another model
        raises :class:`~evidence.errors.EmbeddingStoreError`.
    dtype : str
        How vectors are stored, "float16" (default) or "float32"; an existing store keeps
        its own.

    Raises
    ------
    evidence.errors.EmbeddingStoreError
        If a file of the store is corrupt, truncated or of another format or model. The
        message names the file and says to delete the folder.

    Attributes
    ----------
    added : int
        Texts added to the store by this object (in this process).
    """

    def __init__(self, path: Path, *, model: str = MODEL_NAME, dtype: str = "float16") -> None:
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, not {dtype}")
        self.path = Path(path)
        self.model = model
        self.dtype = np.dtype(dtype)
        self.dim: int | None = None
        self.added = 0
        self._keys: npt.NDArray[Any] = np.zeros(0, dtype=_KEY)
        self._vectors: npt.NDArray[Any] = np.zeros((0, 0), dtype=self.dtype)
        self._pending: dict[bytes, npt.NDArray[Any]] = {}
        self._reload()

    # ------------------------------------------------------------------------ reading

    def _broken(self, file: Path, reason: str) -> EmbeddingStoreError:
        return EmbeddingStoreError(
            f"embedding store file {file} is unreadable ({reason}); delete the folder "
            f"{self.path} and its vectors will be computed again")

    def _read_meta(self) -> dict[str, Any] | None:
        meta_file = self.path / META
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise self._broken(meta_file, f"{e.__class__.__name__}: {e}") from e
        if not isinstance(meta, dict):
            raise self._broken(meta_file, "not a JSON object")
        if meta.get("format") != FORMAT:
            raise self._broken(meta_file, f"format {meta.get('format')!r}, expected {FORMAT}")
        if meta.get("model") != self.model:
            raise self._broken(meta_file,
                               f"vectors of model {meta.get('model')!r}, not {self.model!r}")
        for name in ("keys", "vectors", "dim", "count", "dtype"):
            if name not in meta:
                raise self._broken(meta_file, f"no {name!r} entry")
        return meta

    def _open(self, meta: dict[str, Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        count, dim = int(meta["count"]), int(meta["dim"])
        keys_file = self.path / str(meta["keys"])
        vectors_file = self.path / str(meta["vectors"])
        arrays = []
        for file in (keys_file, vectors_file):
            try:
                arrays.append(np.load(file, mmap_mode="r", allow_pickle=False))
            except FileNotFoundError:
                raise
            except (OSError, ValueError, EOFError) as e:
                raise self._broken(file, f"{e.__class__.__name__}: {e}") from e
        keys, vectors = arrays
        if keys.dtype != _KEY or keys.shape != (count,):
            raise self._broken(keys_file, f"{keys.dtype} {keys.shape}, expected S32 ({count},)")
        if vectors.dtype != np.dtype(str(meta["dtype"])) or vectors.shape != (count, dim):
            raise self._broken(vectors_file, f"{vectors.dtype} {vectors.shape}, expected "
                               f"{meta['dtype']} ({count}, {dim})")
        if count > 1 and not bool(np.all(keys[1:] > keys[:-1])):
            raise self._broken(keys_file, "keys not sorted")
        return keys, vectors

    def _current(self) -> tuple[dict[str, Any] | None, npt.NDArray[Any], npt.NDArray[Any]]:
        """The store on disk now: (meta, keys, vectors); empty arrays when there is none."""
        for attempt in range(_OPEN_TRIES):
            meta = self._read_meta()
            if meta is None:
                return None, np.zeros(0, dtype=_KEY), np.zeros((0, 0), dtype=self.dtype)
            try:
                keys, vectors = self._open(meta)
            except FileNotFoundError as e:
                # Another process replaced the store between our two reads: read again.
                if attempt + 1 < _OPEN_TRIES:
                    continue
                raise self._broken(Path(str(e.filename)), "missing") from e
            return meta, keys, vectors
        raise AssertionError("unreachable")  # pragma: no cover

    def _reload(self) -> None:
        meta, self._keys, self._vectors = self._current()
        if meta is not None:
            self.dim = int(meta["dim"])
            self.dtype = np.dtype(str(meta["dtype"]))

    def _find(self, keys: npt.NDArray[Any]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        """Rows of ``keys`` in the saved arrays, and which were found."""
        n = len(self._keys)
        if n == 0 or len(keys) == 0:
            return np.zeros(len(keys), dtype=np.intp), np.zeros(len(keys), dtype=bool)
        pos = np.searchsorted(self._keys, keys)
        clipped = np.minimum(pos, n - 1)
        found = (pos < n) & (np.asarray(self._keys[clipped]) == keys)
        return clipped, found

    def get(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.float32], list[int]]:
        """The stored vectors of ``texts``, and the positions of those the store lacks.

        Parameters
        ----------
        texts : Sequence[str]
            Texts, exactly as they were (or will be) embedded.

        Returns
        -------
        (vectors, missing)
            ``vectors`` has one float32 row per text (zeros for a missing one; no columns
            while the store is empty); ``missing`` lists the positions of the texts
            without a vector, in order.
        """
        dim = self.dim or 0
        out = np.zeros((len(texts), dim), dtype=np.float32)
        digests = [text_key(t) for t in texts]
        keys = np.array(digests, dtype=_KEY) if digests else np.zeros(0, dtype=_KEY)
        rows, found = self._find(keys)
        if found.any():
            hit = np.flatnonzero(found)
            out[hit] = np.asarray(self._vectors[rows[hit]], dtype=np.float32)
        missing: list[int] = []
        for i, digest in enumerate(digests):
            if found[i]:
                continue
            pending = self._pending.get(digest)
            if pending is None:
                missing.append(i)
            else:
                out[i] = pending
        return out, missing

    def __len__(self) -> int:
        """Vectors in the store, saved or not yet."""
        return len(self._keys) + len(self._pending)

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str):
            return False
        return not self.get([text])[1]

    @property
    def unsaved(self) -> int:
        """Vectors added since the last :meth:`save`."""
        return len(self._pending)

    def size_bytes(self) -> int:
        """Bytes on disk of the files in force (0 with no saved store)."""
        meta = self._read_meta()
        if meta is None:
            return 0
        return sum((self.path / str(meta[name])).stat().st_size
                   for name in ("keys", "vectors")) + (self.path / META).stat().st_size

    # ------------------------------------------------------------------------ writing

    def add(self, texts: Sequence[str], vectors: npt.ArrayLike) -> int:
        """Add the vectors of ``texts`` (kept in memory until :meth:`save`).

        Texts already in the store are skipped, so their vectors never change.

        Parameters
        ----------
        texts : Sequence[str]
            The texts that were embedded.
        vectors : array-like
            One row per text.

        Returns
        -------
        int
            How many were new to the store.

        Raises
        ------
        ValueError
            If the counts differ, or the vectors' dimension is not the store's.
        """
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != len(texts):
            raise ValueError(f"one vector per text is needed: {len(texts)} texts, "
                             f"vectors of shape {array.shape}")
        if not texts:
            return 0
        if self.dim is None:
            self.dim = int(array.shape[1])
        elif array.shape[1] != self.dim:
            raise ValueError(f"vectors of dimension {array.shape[1]}, the store holds {self.dim}")
        _, missing = self.get(texts)
        new = 0
        for i in missing:
            digest = text_key(texts[i])
            if digest not in self._pending:
                self._pending[digest] = array[i].astype(self.dtype)
                new += 1
        self.added += new
        return new

    def save(self) -> bool:
        """Write the added vectors to disk, merged with what is there now.

        Writers take turns through the folder's lock; what another process saved since
        this store was opened is kept. Files are written under new names and switched in
        with one ``os.replace`` of ``store.json``, so a reader sees the old store or the
        new one, never half of one.

        Returns
        -------
        bool
            True when something was written (False: nothing to save).
        """
        if not self._pending:
            return False
        with writer_lock(self.path):
            meta, keys, vectors = self._current()
            if meta is not None:
                if int(meta["dim"]) != self.dim:
                    raise self._broken(self.path / META, f"vectors of dimension "
                                       f"{meta['dim']}, this process has {self.dim}")
                self.dtype = np.dtype(str(meta["dtype"]))
            self._keys, self._vectors = keys, vectors
            pending = dict(self._pending)
            digests = list(pending)
            new_keys = np.array(digests, dtype=_KEY)
            _, found = self._find(new_keys)
            fresh = [i for i in range(len(digests)) if not found[i]]
            assert self.dim is not None
            all_keys = np.concatenate([np.asarray(keys), new_keys[fresh]])
            added = (np.stack([pending[digests[i]] for i in fresh]).astype(self.dtype)
                     if fresh else np.zeros((0, self.dim), dtype=self.dtype))
            old = (np.asarray(vectors, dtype=self.dtype) if len(keys)
                   else np.zeros((0, self.dim), dtype=self.dtype))
            all_vectors = np.concatenate([old, added])
            order = np.argsort(all_keys, kind="stable")
            self._write(all_keys[order], all_vectors[order], meta)
            self._pending.clear()
            self._reload()
        return True

    def _write(self, keys: npt.NDArray[Any], vectors: npt.NDArray[Any],
               previous: dict[str, Any] | None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        token = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{os.getpid()}"
        names = {"keys": f"keys-{token}.npy", "vectors": f"vectors-{token}.npy"}
        for name, array in (("keys", keys), ("vectors", vectors)):
            tmp = self.path / f".{names[name]}.tmp"
            with tmp.open("wb") as fh:
                np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path / names[name])
        now = datetime.now(UTC).isoformat(timespec="seconds")
        meta = {"format": FORMAT, "model": self.model, "dim": int(vectors.shape[1]),
                "dtype": str(self.dtype), "count": len(keys), **names,
                "created_at": (previous or {}).get("created_at", now), "updated_at": now}
        tmp_meta = self.path / f".{META}.{os.getpid()}.tmp"
        tmp_meta.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(tmp_meta, self.path / META)
        # Open memory maps of the older files stay valid after they are unlinked.
        for pattern in ("keys-*.npy", "vectors-*.npy"):
            for old in self.path.glob(pattern):
                if old.name not in names.values():
                    old.unlink(missing_ok=True)
