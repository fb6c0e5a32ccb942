"""The claims register: one row per claim, its final verdict and what the verdict rests on."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine
from sqlmodel import Session

from evidence import db, export, queries
from evidence.models import ClaimSource, RawRecord, utcnow
from tests.factories import (
    make_article,
    make_assessment,
    make_claim,
    make_link,
    make_study,
    make_user,
    make_verdict,
)

SAFETY = "Side effects are minimal and pass quickly."
SUCCESS = "Ketamine has a high success rate for treatment-resistant depression."


def _raw(session: Session, body: bytes) -> RawRecord:
    raw = RawRecord(utility="efetch", url="https://eutils.example/efetch.fcgi",
                    sha256=hashlib.sha256(body).hexdigest(), size=len(body), body=body)
    session.add(raw)
    session.flush()
    return raw


def _seed(session: Session) -> dict[str, Any]:
    """One article, three claims: one final, one reviewed once, one untouched; and a
    second article with one claim."""
    article = make_article(session, title="Ketamine clinic blog")
    decided = make_claim(session, article=article, flags=["indirect_evidence"])
    reviewed = make_claim(session, article=article, sentence=SAFETY, category="safety")
    untouched = make_claim(session, article=article, sentence=SUCCESS)
    other = make_claim(session)
    rita, ravi = make_user(session, username="rita"), make_user(session, username="ravi")
    ada = make_user(session, username="ada", role="adjudicator")
    raw = _raw(session, b"<PubmedArticleSet>...</PubmedArticleSet>")
    rct = make_study(session, pmid="90000101", doi="10.5555/rct.1", raw_record_id=raw.id)
    review_ = make_study(session, pmid="90000102", design="systematic_review",
                         evidence_level="1a")
    series = make_study(session, pmid="90000103", design="case_series", evidence_level="4")
    unread = make_study(session, pmid="90000104")
    l_rct = make_link(session, claim=decided, study=rct, rank=1)
    l_rev = make_link(session, claim=decided, study=review_, rank=2)
    l_ser = make_link(session, claim=decided, study=series, rank=3)
    make_link(session, claim=decided, study=unread, rank=4)
    make_assessment(session, link=l_rct, reviewer=rita, stance="supports")
    make_assessment(session, link=l_rct, reviewer=ravi, stance="supports")
    make_assessment(session, link=l_rev, reviewer=rita, stance="partially_supports")
    make_assessment(session, link=l_rev, reviewer=ravi, stance="contradicts")
    make_assessment(session, link=l_ser, reviewer=rita, stance="does_not_address")
    make_verdict(session, claim=decided, reviewer=rita, substantiation="substantiated")
    make_verdict(session, claim=decided, reviewer=ravi, substantiation="substantiated")
    make_verdict(session, claim=decided, reviewer=ada, kind="final",
                 substantiation="partially_substantiated", certainty="low",
                 action="revise_wording", rationale="the review is mixed")
    make_verdict(session, claim=reviewed, reviewer=rita, substantiation="unsubstantiated")
    decided.status, reviewed.status = "final", "in_review"
    session.add(ClaimSource(claim_id=decided.id, kind="drug_label", title="Spravato label",
                            url="https://www.accessdata.fda.gov/label.pdf"))
    session.add_all([decided, reviewed])
    session.commit()
    return {"article": article.id, "decided": decided.id, "reviewed": reviewed.id,
            "untouched": untouched.id, "other": other.id, "raw_sha": raw.sha256}


def test_register_row_per_claim_with_final_verdict_and_its_evidence(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as s:
        ids = _seed(s)
    with db.read_session(engine) as s:
        df = queries.claims_register(s)
    assert list(df.columns) == queries.REGISTER_COLUMNS
    # By article, then in reading order (the success-rate sentence comes before safety).
    assert df["claim_id"].tolist() == [ids["decided"], ids["untouched"], ids["reviewed"],
                                       ids["other"]]
    row = df.set_index("claim_id").loc[ids["decided"]]
    assert (row["status"], row["substantiation"], row["certainty"], row["action"]) == (
        "final", "partially_substantiated", "low", "revise_wording")
    assert row["adjudicator"] == "ada" and row["rationale"] == "the review is mixed"
    assert row["decided_at"] is not None and row["reviewers"] == ["rita", "ravi"]
    assert row["article_title"] == "Ketamine clinic blog" and row["article_revision"] == 1
    assert row["text"].startswith("Many patients") and row["end"] > row["start"]
    assert row["supporting"] == [{"pmid": "90000101", "design": "rct",
                                  "evidence_level": "1b"}]
    # Two reviewers read the review differently: it is listed under both stances.
    assert [d["pmid"] for d in row["partly_supporting"]] == ["90000102"]
    assert row["contradicting"] == [{"pmid": "90000102", "design": "systematic_review",
                                     "evidence_level": "1a"}]
    assert row["sources"] == [{"kind": "drug_label", "title": "Spravato label",
                               "url": "https://www.accessdata.fda.gov/label.pdf"}]
    assert row["flags"] == ["indirect_evidence"]
    # The raw response each listed study came from; the case series nobody relied on
    # ("does not address") and the unread study are not listed.
    raw = {r["pmid"]: r["raw_sha256"] for r in row["raw_records"]}
    assert raw == {"90000101": ids["raw_sha"], "90000102": None}

    pending = df.set_index("claim_id").loc[ids["reviewed"]]
    assert pending["status"] == "in_review" and pd.isna(pending["substantiation"])
    assert pd.isna(pending["adjudicator"]) and pending["reviewers"] == ["rita"]
    assert pending["supporting"] == [] and pending["raw_records"] == []
    untouched = df.set_index("claim_id").loc[ids["untouched"]]
    assert untouched["status"] == "unreviewed" and untouched["reviewers"] == []
    assert pd.isna(untouched["last_review_at"])


def test_register_filters_by_article_and_since(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as s:
        ids = _seed(s)
    with db.read_session(engine) as s:
        one = queries.claims_register(s, article_id=ids["article"])
        later = queries.claims_register(s, since=utcnow() + timedelta(hours=1))
        earlier = queries.claims_register(s, since=utcnow() - timedelta(hours=1))
        none = queries.claims_register(s, article_id=10**9)
    assert set(one["claim_id"]) == {ids["decided"], ids["reviewed"], ids["untouched"]}
    assert later.empty and list(later.columns) == queries.REGISTER_COLUMNS
    assert len(earlier) == 4
    assert none.empty


def test_every_export_format_has_the_register(engine: Engine, tmp_path: Path) -> None:
    with Session(engine, expire_on_commit=False) as s:
        ids = _seed(s)
    with db.read_session(engine) as s:
        manifest = export.export(s, out_dir=tmp_path / "csv", fmt="csv")
        export.export(s, out_dir=tmp_path / "pq", fmt="parquet")
        export.export(s, out_dir=tmp_path / "xl", fmt="xlsx")
    files = {f["file"]: f for f in manifest["files"]}
    assert files["claims_register.csv"]["rows"] == 4
    csv = pd.read_csv(tmp_path / "csv" / "claims_register.csv")
    assert list(csv.columns) == queries.REGISTER_COLUMNS
    row = csv.set_index("claim_id").loc[ids["decided"]]
    # Lists are JSON in the text formats.
    assert json.loads(row["supporting"])[0]["pmid"] == "90000101"
    assert json.loads(row["raw_records"])[0]["raw_sha256"] == ids["raw_sha"]
    pq = pd.read_parquet(tmp_path / "pq" / "claims_register.parquet")
    assert pq.set_index("claim_id").loc[ids["decided"], "substantiation"] == (
        "partially_substantiated")
    xl = pd.read_excel(tmp_path / "xl" / "substantiate.xlsx", sheet_name="claims_register")
    assert len(xl) == 4 and json.loads(
        xl.set_index("claim_id").loc[ids["decided"], "reviewers"]) == ["rita", "ravi"]
