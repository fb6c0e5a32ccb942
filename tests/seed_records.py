"""Synthetic stand-ins for the four scholarly citations of seed article 004.

Seed article ``data/articles/004_fd66a576c14499d5.txt`` cites four scholarly records:

=====================================  ==========  ==============================
cited as                               stand-in    kind of study it models
=====================================  ==========  ==============================
doi 10.1186/s40337-022-00588-9          90000101   case series: 5 eating-disorder
 (jeatdisord.biomedcentral.com URL)                patients, intramuscular ketamine
                                                   given in groups
PMID 35326338                           90000102   narrative review: ketamine for
                                                   eating disorders
PMID 35997954                           90000103   single-arm pilot: ketogenic diet
                                                   plus ketamine, 5 anorexia nervosa
                                                   patients
PMC6767816                              90000104   single-arm open-label study: IV
                                                   ketamine boluses, 25 drug-naive
                                                   men with depression
=====================================  ==========  ==============================

No machine this project is built on reaches NCBI, so the real records cannot be fetched,
and a test must never attach invented content to a real identifier. The right-hand
column comes from an independent reading of what the cited papers are; which kind goes
with which identifier is this project's best reading (the DOI is cited through the
Journal of Eating Disorders site) and was not checked against PubMed.

Everything in the records below (titles, abstracts, sample details, journals, years,
publication types, MeSH) is MODELLED on that kind of study, as PubMed would index such a
paper. None of it is the real record. The identifiers are plainly synthetic: PMIDs
90000101-90000104, DOIs ``10.5555/seed.1``-``10.5555/seed.4`` (10.5555 is the prefix
reserved for examples), PMCID ``PMC90000104``.

Helpers:

* `seed_article_004_text` gives article 004 with its four scholarly identifiers replaced
  by the synthetic ones (URL forms kept, so they parse as citations);
* `write_seed_corpus` writes the five seed articles with that text for 004;
* `serve_seed_records` registers the four records with a `FakeEutils` server (efetch
  serves them; the DOI resolves by ``[AID]`` esearch, the PMCID by elink pmc_pubmed);
* `seed_article_set` gives the four records as one PubmedArticleSet document.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.pubmed_records import article_set, article_xml

if TYPE_CHECKING:
    from tests.fake_eutils import FakeEutils

ROOT = Path(__file__).resolve().parents[1]
SEED_ARTICLES = ROOT / "data" / "articles"
ARTICLE_004 = "004_fd66a576c14499d5.txt"

# Stands in for doi 10.1186/s40337-022-00588-9 (cited by its jeatdisord.biomedcentral.com
# URL). Modelled content: a case series, not the real record.
SEED_CASE_SERIES: dict[str, Any] = dict(
    pmid="90000101",
    title="Group intramuscular ketamine sessions in residential eating-disorder treatment: a "
          "case series",
    abstract="BACKGROUND: Patients in residential treatment for eating disorders have few "
             "options when standard care fails. METHODS: We describe five adults in a "
             "residential eating-disorder programme who received intramuscular ketamine in "
             "small group sessions with preparation and integration psychotherapy. There was "
             "no control group. Eating-disorder questionnaires and session experiences were "
             "recorded before and after the course. RESULTS: Three of the five patients "
             "reported fewer eating-disorder symptoms after the sessions. Transient "
             "dissociation and nausea were reported. CONCLUSIONS: Group ketamine sessions were "
             "feasible in a residential eating-disorder setting; controlled studies are "
             "needed.",
    publication_types=("Journal Article",),
    mesh=("Humans", "Adult", "Female", "Male", "Ketamine", "Feeding and Eating Disorders",
          "Injections, Intramuscular", "Psychotherapy, Group", "Residential Treatment"),
    year=2022,
    journal="Synthetic Journal of Eating Disorders",
    doi="10.5555/seed.1",
)

# Stands in for PMID 35326338. Modelled content: a narrative review, not the real record.
SEED_NARRATIVE_REVIEW: dict[str, Any] = dict(
    pmid="90000102",
    title="Ketamine as a treatment for eating disorders: current evidence and future "
          "directions",
    abstract="Eating disorders such as anorexia nervosa, bulimia nervosa and binge-eating "
             "disorder carry high morbidity and few effective drug treatments. Ketamine, an "
             "NMDA receptor antagonist with rapid antidepressant effects, has been proposed "
             "for eating disorders because of shared features with depression and "
             "obsessive-compulsive illness. This review summarises the mechanisms proposed "
             "and the small case reports, case series and open pilot studies published so "
             "far, and outlines the questions controlled trials should answer.",
    publication_types=("Journal Article", "Review"),
    mesh=("Humans", "Ketamine", "Feeding and Eating Disorders", "Anorexia Nervosa",
          "Bulimia Nervosa", "Binge-Eating Disorder", "Receptors, N-Methyl-D-Aspartate",
          "Antidepressive Agents"),
    year=2022,
    journal="Synthetic Reviews in Psychiatry",
    doi="10.5555/seed.2",
)

# Stands in for PMID 35997954. Modelled content: a single-arm pilot (typed "Clinical Trial"
# as PubMed often types such pilots), not the real record.
SEED_KETOGENIC_PILOT: dict[str, Any] = dict(
    pmid="90000103",
    title="Ketogenic diet followed by ketamine infusions for chronic anorexia nervosa: an "
          "open pilot study",
    abstract="PURPOSE: To test whether a ketogenic diet followed by ketamine infusions is "
             "feasible in adults with long-standing anorexia nervosa. METHODS: Five women "
             "with chronic anorexia nervosa followed a supervised ketogenic diet and, once "
             "in ketosis, received a series of intravenous ketamine infusions. All "
             "participants received the same treatment; there was no comparison group. "
             "Eating-disorder psychopathology was rated at baseline and at follow-up. "
             "RESULTS: Eating-disorder symptom scores fell in most participants and some "
             "improvement persisted at follow-up. CONCLUSION: The combination was feasible; "
             "randomised studies are needed to test efficacy.",
    publication_types=("Clinical Trial", "Journal Article"),
    mesh=("Humans", "Female", "Adult", "Anorexia Nervosa", "Diet, Ketogenic", "Ketamine",
          "Infusions, Intravenous", "Pilot Projects", "Treatment Outcome"),
    year=2022,
    journal="Synthetic Pilot Studies in Psychiatry",
    doi="10.5555/seed.3",
)

# Stands in for PMC6767816 (cited by its www.ncbi.nlm.nih.gov/pmc URL). Modelled content:
# a single-arm open-label study, not the real record.
SEED_DRUG_NAIVE_OPEN_LABEL: dict[str, Any] = dict(
    pmid="90000104",
    title="Intravenous ketamine boluses in drug-naive men with major depressive disorder: an "
          "open-label study",
    abstract="OBJECTIVE: To describe the course of depressive symptoms after intravenous "
             "ketamine in patients who had never taken antidepressants. METHODS: Twenty-five "
             "drug-naive men with a first diagnosis of major depressive disorder received "
             "subanaesthetic intravenous ketamine boluses in an open-label, single-arm "
             "design. Depression ratings were taken before dosing and at intervals up to one "
             "week. RESULTS: Mean depression scores fell within hours of dosing and remained "
             "lower at one week. Dissociative symptoms resolved within an hour. CONCLUSION: "
             "Without a control group these changes cannot be attributed to ketamine alone.",
    publication_types=("Journal Article",),
    mesh=("Humans", "Male", "Adult", "Depressive Disorder, Major", "Ketamine",
          "Antidepressive Agents", "Injections, Intravenous"),
    year=2019,
    journal="Synthetic Clinical Psychopharmacology",
    doi="10.5555/seed.4",
    pmcid="PMC90000104",
)

SEED_RECORDS: tuple[dict[str, Any], ...] = (
    SEED_CASE_SERIES, SEED_NARRATIVE_REVIEW, SEED_KETOGENIC_PILOT, SEED_DRUG_NAIVE_OPEN_LABEL,
)
"""The four stand-ins, in the order article 004 cites what they stand in for."""

#: The citation as written in article 004 -> the synthetic citation that replaces it.
CITATION_REPLACEMENTS: dict[str, str] = {
    "https://jeatdisord.biomedcentral.com/articles/10.1186/s40337-022-00588-9":
        "https://doi.org/10.5555/seed.1",
    "https://pubmed.ncbi.nlm.nih.gov/35326338/": "https://pubmed.ncbi.nlm.nih.gov/90000102/",
    "https://pubmed.ncbi.nlm.nih.gov/35997954/": "https://pubmed.ncbi.nlm.nih.gov/90000103/",
    "https://www.ncbi.nlm.nih.gov/pmc/articles/PMC6767816/":
        "https://www.ncbi.nlm.nih.gov/pmc/articles/PMC90000104/",
}

#: Real identifier (as the citation parser normalises it) -> the stand-in's PMID.
STANDS_IN_FOR: dict[str, str] = {
    "doi:10.1186/s40337-022-00588-9": "90000101",
    "pmid:35326338": "90000102",
    "pmid:35997954": "90000103",
    "pmcid:PMC6767816": "90000104",
}

#: The synthetic identifiers article 004 cites after `seed_article_004_text`.
SYNTHETIC_CITATIONS: dict[str, str] = {
    "doi:10.5555/seed.1": "90000101",
    "pmid:90000102": "90000102",
    "pmid:90000103": "90000103",
    "pmcid:PMC90000104": "90000104",
}


def seed_article_004_text() -> str:
    """Article 004 with its four scholarly citations replaced by the synthetic ones.

    Only the reference list at the end changes, so the claim offsets of the gold
    annotations (``tests/data/annotations/004_*.json``) still hold. The WebMD link stays.
    """
    text = (SEED_ARTICLES / ARTICLE_004).read_text(encoding="utf-8")
    for real, synthetic in CITATION_REPLACEMENTS.items():
        if text.count(real) != 1:
            raise ValueError(f"{ARTICLE_004} should cite {real} exactly once")
        text = text.replace(real, synthetic)
    return text


def write_seed_corpus(target: Path) -> Path:
    """Write the five seed articles to ``target``, article 004 with synthetic citations.

    Returns ``target``. The other four articles cite no scholarly identifier and are
    written unchanged.
    """
    target.mkdir(parents=True, exist_ok=True)
    for source in sorted(SEED_ARTICLES.glob("*.txt")):
        text = (seed_article_004_text() if source.name == ARTICLE_004
                else source.read_text(encoding="utf-8"))
        (target / source.name).write_text(text, encoding="utf-8")
    return target


def seed_article_set() -> bytes:
    """The four stand-ins as one PubmedArticleSet document (for loading without a server)."""
    return article_set(*(article_xml(**record) for record in SEED_RECORDS))


def serve_seed_records(server: FakeEutils) -> None:
    """Make ``server`` answer for the four stand-ins as NCBI would for real records.

    efetch returns each record; ``"10.5555/seed.N"[AID]`` esearch resolves each DOI; elink
    pmc_pubmed maps ``PMC90000104`` to 90000104.
    """
    for record in SEED_RECORDS:
        server.add_record(record["pmid"], article_xml(**record))
        server.add_doi(record["doi"], record["pmid"])
        if record.get("pmcid"):
            server.add_pmcid(record["pmcid"], record["pmid"])
