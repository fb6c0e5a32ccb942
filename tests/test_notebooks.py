"""Analyst notebooks run top to bottom against a real database, and never write to it.

The database holds the demo corpus plus a reviewed claim (two linked studies, a reviewer's
verdict and a later change of it), so every notebook has something to show.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from sqlmodel import Session, select

from evidence import db, review
from evidence.models import AuditEvent, Claim
from substantiate import jobs
from tests.factories import make_link, make_study, make_user

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: What each notebook's output must show (a notebook not listed here fails the test).
SHOWS = {
    "claims_overview": ("efficacy", "not_scholarly"),
    "evidence_quality": ("case_series", "moderate", "fits", "vega-lite"),
    "audit_review": ("verdict.update", "nb_reviewer", "90000001", "contradicted",
                     "audit chain intact: True", "vega-lite"),
}


def _seed_review(engine: object) -> None:
    """A claim with two linked studies and a verdict changed once, through the workflow."""
    with Session(engine) as s:  # type: ignore[call-overload]
        claim = s.exec(select(Claim).where(Claim.category == "efficacy")
                       .order_by(Claim.id)).first()
        assert claim is not None and claim.id is not None
        make_link(s, claim=claim, study=make_study(s, pmid="90000001"))
        make_link(s, claim=claim, origin="local", study=make_study(
            s, pmid="90000002", design="case_series", evidence_level="4"))
        user = make_user(s, username="nb_reviewer")
        verdict = review.save_verdict(s, user=user, claim_id=claim.id,
                                      substantiation="substantiated", certainty="moderate",
                                      action="approve", rationale="seeded")
        s.commit()
        review.save_verdict(s, user=user, claim_id=claim.id, substantiation="contradicted",
                            certainty="low", action="remove", rationale="seeded change",
                            expected_version=verdict.version)
        s.commit()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_reads_only(path: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    engine = db.make_engine(url)
    db.upgrade(engine)
    jobs.ingest_articles(engine, [str(ROOT / "data" / "articles")])
    _seed_review(engine)
    with Session(engine) as s:
        events_before = len(s.exec(select(AuditEvent)).all())
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "commit notebooks with outputs stripped"
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join([str(o.get("data", {}).get("text/plain", "")) for o in outputs]
                     + [str(o.get("text", "")) for o in outputs]
                     + [str(o.get("data", {}).get("text/html", "")) for o in outputs])
    for shown in SHOWS[path.stem]:
        assert shown in text, f"{path.name} does not show {shown!r}"
    with Session(engine) as s:
        assert len(s.exec(select(AuditEvent)).all()) == events_before
    engine.dispose()
