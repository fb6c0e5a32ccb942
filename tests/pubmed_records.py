"""Hand-written PubMed records for tests: ``article_xml(...)`` builds one PubmedArticle.

Every record here is synthetic: PMIDs from 90000000 up, DOIs under ``10.5555/`` (the
prefix reserved for examples), PMCIDs from PMC90000000 up. A hand-written record never
borrows a real identifier, so nothing invented is ever shown under a real PubMed id.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape


def article_xml(
    pmid: str,
    *,
    title: str,
    abstract: str = "",
    publication_types: Sequence[str] = ("Journal Article",),
    mesh: Sequence[str] = (),
    year: int = 2021,
    journal: str = "Journal of Affective Disorders",
    doi: str | None = None,
    pmcid: str | None = None,
    retracted_in: str | None = None,
    language: str = "eng",
) -> bytes:
    """A PubmedArticle element with the given fields, as NCBI lays it out."""
    pts = "".join(f'<PublicationType UI="D0">{escape(p)}</PublicationType>'
                  for p in publication_types)
    mh = "".join(f'<MeshHeading><DescriptorName UI="D0" MajorTopicYN="N">{escape(m)}'
                 f"</DescriptorName></MeshHeading>" for m in mesh)
    ids = f'<ArticleId IdType="pubmed">{pmid}</ArticleId>'
    if doi:
        ids += f'<ArticleId IdType="doi">{escape(doi)}</ArticleId>'
    if pmcid:
        ids += f'<ArticleId IdType="pmc">{pmcid}</ArticleId>'
    cc = ""
    if retracted_in:
        cc = (f'<CommentsCorrectionsList><CommentsCorrections RefType="RetractionIn">'
              f"<RefSource>Retraction notice</RefSource><PMID Version=\"1\">{retracted_in}</PMID>"
              f"</CommentsCorrections></CommentsCorrectionsList>")
    abstract_xml = (f"<Abstract><AbstractText>{escape(abstract)}</AbstractText></Abstract>"
                    if abstract else "")
    return (
        f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM">'
        f'<PMID Version="1">{pmid}</PMID>'
        f'<Article PubModel="Print"><Journal><JournalIssue CitedMedium="Internet">'
        f"<Volume>1</Volume><Issue>1</Issue><PubDate><Year>{year}</Year></PubDate>"
        f"</JournalIssue><Title>{escape(journal)}</Title><ISOAbbreviation>J Test"
        f"</ISOAbbreviation></Journal><ArticleTitle>{escape(title)}</ArticleTitle>"
        f"{abstract_xml}<AuthorList><Author><LastName>Doe</LastName><ForeName>Jane</ForeName>"
        f"<Initials>J</Initials></Author></AuthorList><Language>{language}</Language>"
        f"<PublicationTypeList>{pts}</PublicationTypeList></Article>"
        f"<MeshHeadingList>{mh}</MeshHeadingList>{cc}</MedlineCitation>"
        f"<PubmedData><PublicationStatus>ppublish</PublicationStatus>"
        f"<ArticleIdList>{ids}</ArticleIdList></PubmedData></PubmedArticle>"
    ).encode()


def article_set(*articles: bytes) -> bytes:
    """Wrap PubmedArticle elements in a PubmedArticleSet document."""
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>'
            + b"".join(articles) + b"</PubmedArticleSet>\n")


# Synthetic studies that bear (or pointedly do not bear) on ketamine-clinic claims.
IV_KETAMINE_RCT = dict(
    pmid="90000301",
    title="Intravenous ketamine for treatment-resistant major depression: a randomized "
          "placebo-controlled trial",
    abstract="Patients with treatment-resistant depression received intravenous ketamine "
             "infusions or placebo. Depressive symptoms improved within 24 hours of the "
             "first ketamine infusion. Side effects were transient dissociation and raised "
             "blood pressure.",
    publication_types=("Journal Article", "Randomized Controlled Trial"),
    mesh=("Humans", "Ketamine", "Depressive Disorder, Treatment-Resistant", "Infusions, "
          "Intravenous"),
    doi="10.5555/test.90000301",
)
EATING_DISORDER_REVIEW = dict(
    pmid="90000302",
    title="Ketamine in the treatment of eating disorders: a narrative review",
    abstract="Anorexia nervosa and bulimia nervosa are eating disorders with few effective "
             "treatments. This review summarises case reports of ketamine in eating "
             "disorders.",
    publication_types=("Journal Article", "Review"),
    mesh=("Humans", "Feeding and Eating Disorders", "Anorexia Nervosa", "Ketamine"),
    doi="10.5555/test.90000302",
)
ESKETAMINE_SPRAY = dict(
    pmid="90000303",
    title="Esketamine nasal spray for rapid reduction of depressive symptoms: a randomized "
          "placebo-controlled trial",
    abstract="Esketamine nasal spray reduced depressive symptoms within hours compared with "
             "placebo nasal spray in patients with major depressive disorder.",
    publication_types=("Journal Article", "Randomized Controlled Trial"),
    mesh=("Humans", "Ketamine", "Depressive Disorder, Major", "Administration, Intranasal"),
    pmcid="PMC90000303",
)
RETRACTED_STUDY = dict(
    pmid="90000304",
    title="Ketamine cures depression permanently after a single infusion",
    abstract="A single ketamine infusion produced permanent remission of depression.",
    publication_types=("Journal Article", "Retracted Publication"),
    mesh=("Humans", "Ketamine", "Depression"),
    retracted_in="90000305",
)

#: A study outside psychiatry, for links a ranker would never make.
ASTHMA_STUDY = dict(
    pmid="90000306",
    title="Inhaled budesonide in mild asthma",
    abstract="Asthma exacerbations fell with inhaled budesonide.",
)
