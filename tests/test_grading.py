"""Evidence rules: design and level, flags, indirectness, GRADE certainty suggestion.

The fixture tests read real PubMed records from ../shared in place (Biopython's
``Entrez.read``, independent of the project's own parser) and check the design of every
record; the rest are hand-built cases, one per rule.
"""

from __future__ import annotations

import dataclasses
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from Bio import Entrez

from benchmarks.retrieval import load_corpus
from evidence import grading
from evidence.grading import (
    DESIGN_RANKS,
    DESIGNS,
    EVIDENCE_LEVELS,
    FLAG_CODES,
    GRADE_DOMAINS,
    GRADE_LEVELS,
    RANK_RANDOMISED_SYNTHESIS,
    LinkEvidence,
    Mismatch,
    assess_indirectness,
    certainty_departs,
    classify_design,
    study_flags,
    suggest_certainty,
)
from tests._shared import shared_path

# ---------------------------------------------------------------------------------------
# Real records from ../shared/fixtures
# ---------------------------------------------------------------------------------------

FIXTURE_FILES = (
    "ncbi/pubmed1.xml", "ncbi/pubmed2.xml", "ncbi/pubmed4.xml", "ncbi/pubmed5.xml",
    "ncbi/pubmed6.xml", "ncbi/pubmed7.xml", "ncbi/title_with_html_tags.xml",
    "medline/pubmed-29768149.xml", "medline/test_current_medline.xml.gz",
)

# PMID -> (design, level, why), one row per record in the fixtures.
EXPECTED_FIXTURE_DESIGNS: dict[str, tuple[str, str, str]] = {
    "12091962": ("narrative_review", "5", "Journal Article + Review"),
    "9997": ("in_vitro", "6", "Journal Article only, biochemistry MeSH without Humans/Animals"),
    "11748933": ("animal", "6", "MeSH Animals without Humans (fish spermatozoa)"),
    "11700088": ("unknown", "unknown", "Journal Article only, no MeSH (MRI physics)"),
    "27797938": ("case_control", "3",
                 "Observational Study + Case-Control Studies + Prospective Studies + "
                 "Randomized Controlled Trials as Topic (nested case-control)"),
    "28775130": ("cohort", "2b", "Journal Article only, no MeSH; abstract: 'a cohort'"),
    "30108519": ("unknown", "unknown", "Journal Article only, no MeSH (13 runners)"),
    "29963580": ("unknown", "unknown", "Journal Article only, no MeSH (imaging software)"),
    "29768149": ("rct", "1b",
                 "Clinical Trial Phase III + Comparative + Multicenter + RCT"),
    "36400559": ("narrative_review", "5", "Journal Article + Review"),
    "2930949": ("narrative_review", "5", "Journal Article + Review"),
    "11446611": ("narrative_review", "5", "Journal Article + Review"),
    "28786991": ("meta_analysis", "2a",
                 "Meta-Analysis + Systematic Review; included designs not stated"),
}


@dataclass(frozen=True)
class Record:
    pmid: str
    title: str
    abstract: str
    publication_types: tuple[str, ...]
    mesh: tuple[str, ...]
    languages: tuple[str, ...]
    comments_corrections: tuple[tuple[str, str | None], ...]


def _records(relative: str) -> list[Record]:
    path: Path = shared_path("fixtures", *relative.split("/"))
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        parsed = Entrez.read(handle)
    records = []
    for article in parsed["PubmedArticle"]:
        citation = article["MedlineCitation"]
        body = citation["Article"]
        abstract = " ".join(str(t) for t in body.get("Abstract", {}).get("AbstractText", []))
        comments = tuple(
            (str(c.attributes["RefType"]), str(c["PMID"]) if "PMID" in c else None)
            for c in citation.get("CommentsCorrectionsList", [])
        )
        records.append(Record(
            pmid=str(citation["PMID"]),
            title=str(body["ArticleTitle"]),
            abstract=abstract,
            publication_types=tuple(str(p) for p in body["PublicationTypeList"]),
            mesh=tuple(str(m["DescriptorName"]) for m in citation.get("MeshHeadingList", [])),
            languages=tuple(str(lang) for lang in body.get("Language", [])),
            comments_corrections=comments,
        ))
    return records


def _classify(record: Record) -> grading.DesignAssessment:
    return classify_design(record.publication_types, record.mesh, title=record.title,
                           abstract=record.abstract)


def _fixture_record(pmid: str, relative: str) -> Record:
    return next(r for r in _records(relative) if r.pmid == pmid)


@pytest.mark.parametrize("relative", FIXTURE_FILES)
def test_fixture_records_get_expected_design_and_level(relative: str) -> None:
    records = _records(relative)
    assert records, f"{relative} holds no PubmedArticle"
    for record in records:
        design, level, why = EXPECTED_FIXTURE_DESIGNS[record.pmid]
        got = _classify(record)
        assert (got.design, got.level) == (design, level), (record.pmid, why, got.reasons)
        assert got.rank == DESIGN_RANKS[(design, level)]
        assert got.reasons, record.pmid


def test_every_fixture_record_and_publication_type_combination_has_an_expected_row() -> None:
    records = [r for relative in FIXTURE_FILES for r in _records(relative)]
    assert {r.pmid for r in records} == set(EXPECTED_FIXTURE_DESIGNS)
    combinations = {frozenset(r.publication_types) for r in records}
    # Journal Article; +Review; +Research Support; +Observational; the NEJM RCT; the
    # Meta-Analysis/Systematic Review: every combination the fixtures hold.
    assert len(combinations) == 6
    for combination in combinations:
        assert any(frozenset(r.publication_types) == combination
                   and r.pmid in EXPECTED_FIXTURE_DESIGNS for r in records)


def test_fixture_rct_as_topic_heading_is_not_read_as_a_trial() -> None:
    record = _fixture_record("27797938", "ncbi/pubmed4.xml")
    assert "Randomized Controlled Trials as Topic" in record.mesh
    got = _classify(record)
    assert got.design == "case_control"
    assert any("ignored MeSH 'Randomized Controlled Trials as Topic'" in r for r in got.reasons)
    assert any("'Case-Control Studies'" in r for r in got.reasons)


def test_fixture_html_title_classifies_like_clean_copy() -> None:
    tagged = _classify(_fixture_record("27797938", "ncbi/title_with_html_tags.xml"))
    clean = _classify(_fixture_record("27797938", "ncbi/pubmed4.xml"))
    assert (tagged.design, tagged.level) == (clean.design, clean.level) == ("case_control", "3")


def test_fixture_animal_studies_mentioned_in_abstract_do_not_make_study_animal() -> None:
    record = _fixture_record("28775130", "ncbi/pubmed5.xml")
    assert record.abstract.startswith("Animal studies suggest")
    got = _classify(record)
    assert got.design == "cohort"
    assert any("'cohort'" in r for r in got.reasons)


def test_fixture_meta_analysis_without_stated_trials_is_not_level_1a() -> None:
    got = _classify(_fixture_record("28786991", "medline/test_current_medline.xml.gz"))
    assert (got.design, got.level) == ("meta_analysis", "2a")
    assert any("not assumed to be randomised" in r for r in got.reasons)


def test_fixture_multicenter_rct_notes_the_modifier() -> None:
    got = _classify(_fixture_record("29768149", "medline/pubmed-29768149.xml"))
    assert got.design == "rct"
    assert any("'Multicenter Study'" in r and "modifier" in r for r in got.reasons)
    assert any("'Randomized Controlled Trial'" in r for r in got.reasons)


@pytest.mark.parametrize("relative", FIXTURE_FILES)
def test_fixture_records_raise_no_flags_for_comments(relative: str) -> None:
    for record in _records(relative):
        flags = study_flags(publication_types=record.publication_types,
                            comments_corrections=record.comments_corrections,
                            languages=record.languages)
        assert flags == (), record.pmid


def test_fixture_comment_in_links_are_read_but_not_a_correction() -> None:
    record = _fixture_record("29768149", "medline/pubmed-29768149.xml")
    assert [t for t, _ in record.comments_corrections] == ["CommentIn", "CommentIn"]
    assert study_flags(publication_types=record.publication_types,
                       comments_corrections=record.comments_corrections) == ()
    retracted = study_flags(publication_types=record.publication_types,
                            comments_corrections=[*record.comments_corrections,
                                                  ("RetractionIn", "99999999")])
    assert [f.code for f in retracted] == ["retracted"]


def test_fixture_asthma_trial_is_indirect_for_a_ketamine_depression_claim() -> None:
    record = _fixture_record("29768149", "medline/pubmed-29768149.xml")
    result = assess_indirectness("IV ketamine relieves depression within hours.",
                                 study_title=record.title, study_mesh=record.mesh,
                                 study_abstract=record.abstract)
    # Another condition and another drug: the study does not fit at all.
    assert not result.on_topic and not result.indirect
    assert [m.dimension for m in result.mismatches] == ["condition", "intervention"]
    assert result.mismatches[0] == Mismatch("condition", ("depression",), (), blocking=True)


def test_fixture_designs_feed_the_certainty_suggestion() -> None:
    rct = _classify(_fixture_record("29768149", "medline/pubmed-29768149.xml"))
    meta = _classify(_fixture_record("28786991", "medline/test_current_medline.xml.gz"))
    review = _classify(_fixture_record("2930949", "medline/test_current_medline.xml.gz"))

    def link(d: grading.DesignAssessment) -> LinkEvidence:
        return LinkEvidence(d.design, d.rank, relevant=True, stance="supports",
                            indirect=False, retracted=False)

    assert suggest_certainty([link(rct), link(review)]).level == "high"
    assert suggest_certainty([link(meta)]).level == "low"
    assert suggest_certainty([link(review)]).level == "very_low"


# ---------------------------------------------------------------------------------------
# classify_design: one case per rule
# ---------------------------------------------------------------------------------------

JA = "Journal Article"

DESIGN_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, classify_design kwargs, design, level)
    ("ma_of_rcts", dict(publication_types=[JA, "Meta-Analysis"],
                        abstract="We pooled 9 randomized controlled trials."),
     "meta_analysis", "1a"),
    ("sr_with_rct_topic_heading", dict(publication_types=["Systematic Review", "Review"],
                                       mesh=["Randomized Controlled Trials as Topic"]),
     "systematic_review", "1a"),
    ("sr_designs_unstated", dict(publication_types=["Systematic Review"]),
     "systematic_review", "2a"),
    ("sr_of_observational", dict(publication_types=["Systematic Review"],
                                 abstract="We included 12 cohort studies."),
     "systematic_review", "2a"),
    ("sr_of_non_randomised", dict(publication_types=["Meta-Analysis"],
                                  title="Non-randomized studies of ketamine: a meta-analysis"),
     "meta_analysis", "2a"),
    ("rct", dict(publication_types=[JA, "Randomized Controlled Trial"]), "rct", "1b"),
    ("letter_reporting_rct", dict(publication_types=["Letter", "Randomized Controlled Trial"]),
     "rct", "1b"),
    # A trial that states no comparison group is a case series (CEBM 4), whatever its type.
    ("phase_ii_alone", dict(publication_types=[JA, "Clinical Trial, Phase II"]),
     "case_series", "4"),
    ("phase_ii_against_placebo", dict(
        publication_types=[JA, "Clinical Trial, Phase II"],
        abstract="Ketamine was compared with saline placebo in a parallel design."),
     "non_randomised_trial", "2b"),
    ("trial_single_arm", dict(
        publication_types=["Clinical Trial"],
        title="A single-arm trial of intravenous ketamine in treatment-resistant depression"),
     "case_series", "4"),
    ("trial_pilot_without_control", dict(
        publication_types=[JA],
        title="Ketogenic diet and ketamine infusions in anorexia nervosa: a pilot study",
        abstract="Five women received the diet and six infusions; scores fell from baseline."),
     "case_series", "4"),
    ("before_after_treated_group", dict(
        publication_types=[JA],
        abstract="Twenty-five drug-naive men with depression received three intravenous "
                 "ketamine boluses; ratings were compared with baseline."),
     "case_series", "4"),
    ("observational_single_arm", dict(
        publication_types=["Observational Study"],
        abstract="A prospective single-arm study of 40 outpatients given esketamine."),
     "case_series", "4"),
    ("controlled_trial_alone", dict(publication_types=["Controlled Clinical Trial"]),
     "non_randomised_trial", "2b"),
    ("trial_with_random_allocation", dict(publication_types=["Clinical Trial"],
                                          mesh=["Random Allocation", "Humans"]), "rct", "1b"),
    ("trial_titled_randomised", dict(publication_types=["Clinical Trial"],
                                     title="A randomised trial of ketamine"), "rct", "1b"),
    ("trial_titled_non_randomised", dict(publication_types=["Clinical Trial"],
                                         title="A non-randomized trial of ketamine"),
     "case_series", "4"),
    ("trial_non_randomised_with_controls", dict(
        publication_types=["Clinical Trial"],
        title="A non-randomized trial of ketamine versus electroconvulsive therapy"),
     "non_randomised_trial", "2b"),
    ("trial_abstract_randomly_assigned", dict(
        publication_types=["Clinical Trial, Phase IV"],
        abstract="Patients were randomly assigned to ketamine or midazolam."), "rct", "1b"),
    ("observational_cohort", dict(publication_types=["Observational Study"],
                                  mesh=["Cohort Studies", "Humans"]), "cohort", "2b"),
    ("observational_alone", dict(publication_types=["Observational Study"]),
     "observational", "3"),
    ("twin_study", dict(publication_types=["Twin Study"]), "observational", "3"),
    ("mesh_prospective", dict(publication_types=[JA], mesh=["Humans", "Prospective Studies"]),
     "cohort", "2b"),
    ("mesh_longitudinal", dict(publication_types=[JA], mesh=["Longitudinal Studies"]),
     "cohort", "2b"),
    ("mesh_case_control", dict(publication_types=[JA], mesh=["Case-Control Studies"]),
     "case_control", "3"),
    ("mesh_case_control_beats_cohort", dict(publication_types=[JA],
                                            mesh=["Cohort Studies", "Case-Control Studies"]),
     "case_control", "3"),
    ("mesh_cross_sectional", dict(publication_types=[JA], mesh=["Cross-Sectional Studies"]),
     "observational", "3"),
    ("mesh_retrospective_alone", dict(publication_types=[JA], mesh=["Retrospective Studies"]),
     "observational", "3"),
    ("retrospective_case_series", dict(publication_types=[JA], mesh=["Retrospective Studies"],
                                       abstract="We report a retrospective case series of 14 "
                                                "patients."), "case_series", "4"),
    ("case_report", dict(publication_types=["Case Reports"]), "case_report", "4"),
    ("case_reports_of_several", dict(publication_types=["Case Reports"],
                                     abstract="We describe five patients treated with "
                                              "ketamine."), "case_series", "4"),
    ("title_case_report", dict(publication_types=[JA],
                               title="Ketamine-induced cystitis: a case report"),
     "case_report", "4"),
    ("narrative_review", dict(publication_types=[JA, "Review"]), "narrative_review", "5"),
    ("meta_analysis_as_topic_is_not_ma", dict(publication_types=["Review"],
                                              mesh=["Meta-Analysis as Topic", "Humans"]),
     "narrative_review", "5"),
    ("review_titled_systematic", dict(publication_types=["Review"],
                                      title="Ketamine for depression: a systematic review"),
     "systematic_review", "2a"),
    ("unindexed_sr_and_ma", dict(publication_types=[JA],
                                 title="Esketamine in depression: a systematic review and "
                                       "meta-analysis of randomized trials"),
     "meta_analysis", "1a"),
    ("practice_guideline", dict(publication_types=["Practice Guideline"]), "guideline", "5"),
    ("consensus_conference", dict(publication_types=["Consensus Development Conference"]),
     "guideline", "5"),
    ("guideline_with_review", dict(publication_types=["Guideline", "Review"]),
     "guideline", "5"),
    ("comment_on_meta_analysis", dict(publication_types=["Comment"],
                                      title="Comment on: ketamine meta-analysis"),
     "editorial", "5"),
    ("retraction_notice", dict(publication_types=["Retraction of Publication"]),
     "editorial", "5"),
    ("veterinary_rct", dict(publication_types=["Randomized Controlled Trial, Veterinary"]),
     "animal", "6"),
    ("mesh_animals_without_humans", dict(publication_types=[JA], mesh=["Animals", "Rats"]),
     "animal", "6"),
    ("animal_meta_analysis", dict(publication_types=["Meta-Analysis"], mesh=["Animals"]),
     "animal", "6"),
    ("starred_qualified_mesh", dict(publication_types=[JA],
                                    mesh=["*Animals", "Ketamine/pharmacology"]), "animal", "6"),
    ("animals_with_humans_rct", dict(publication_types=["Randomized Controlled Trial"],
                                     mesh=["Animals", "Humans"]), "rct", "1b"),
    ("title_in_rats", dict(publication_types=[JA],
                           title="Ketamine reverses stress-induced anhedonia in rats"),
     "animal", "6"),
    ("abstract_lab_strain", dict(publication_types=[JA],
                                 abstract="Male Sprague-Dawley rats received ketamine."),
     "animal", "6"),
    ("title_animal_but_humans_mesh", dict(publication_types=[JA], mesh=["Humans", "Cohort Studies"],
                                          title="Dog ownership and depression"),
     "cohort", "2b"),
    ("mesh_in_vitro", dict(publication_types=[JA], mesh=["In Vitro Techniques", "Humans"]),
     "in_vitro", "6"),
    ("in_vitro_heading_on_a_cohort", dict(publication_types=[JA],
                                          mesh=["Humans", "Cohort Studies", "Cells, Cultured"]),
     "cohort", "2b"),
    ("title_in_vitro", dict(publication_types=[JA],
                            title="Ketamine metabolites in vitro: NMDA receptor binding"),
     "in_vitro", "6"),
    ("in_vitro_fertilisation_is_not_bench", dict(publication_types=[JA],
                                                 title="In vitro fertilization outcomes"),
     "unknown", "unknown"),
    ("title_randomised_placebo", dict(publication_types=[JA],
                                      title="A randomized, placebo-controlled trial"),
     "rct", "1b"),
    ("placebo_controlled_without_randomisation", dict(
        publication_types=[JA], abstract="In this placebo-controlled study ..."),
     "non_randomised_trial", "2b"),
    ("open_label", dict(publication_types=[JA],
                        title="Open-label intravenous ketamine for suicidal ideation"),
     "case_series", "4"),
    ("mesh_double_blind_alone", dict(publication_types=[JA], mesh=["Double-Blind Method"]),
     "non_randomised_trial", "2b"),
    ("mesh_random_allocation", dict(publication_types=[JA], mesh=["Random Allocation"]),
     "rct", "1b"),
    ("title_cohort", dict(publication_types=[JA],
                          title="Ketamine use in a national cohort of veterans"),
     "cohort", "2b"),
    ("comparative_study_alone", dict(publication_types=["Comparative Study"]),
     "observational", "3"),
    ("evaluation_study_alone", dict(publication_types=["Evaluation Study"]),
     "observational", "3"),
    ("validation_study_alone", dict(publication_types=["Validation Study"]),
     "observational", "3"),
    ("clinical_study_alone", dict(publication_types=["Clinical Study"]), "observational", "3"),
    ("comparative_study_with_cohort", dict(publication_types=["Comparative Study"],
                                           mesh=["Cohort Studies"]), "cohort", "2b"),
    ("protocol", dict(publication_types=["Clinical Trial Protocol"]), "unknown", "unknown"),
    ("journal_article_alone", dict(publication_types=[JA]), "unknown", "unknown"),
    ("no_publication_types", dict(publication_types=[]), "unknown", "unknown"),
]


@pytest.mark.parametrize(("kwargs", "design", "level"),
                         [pytest.param(k, d, lv, id=i) for i, k, d, lv in DESIGN_CASES])
def test_classify_design_rule(kwargs: dict[str, Any], design: str, level: str) -> None:
    got = classify_design(**kwargs)
    assert (got.design, got.level) == (design, level), got.reasons
    assert got.rank == DESIGN_RANKS[(design, level)]


@pytest.mark.parametrize("pt", ["Editorial", "Comment", "Letter", "News", "Interview"])
def test_opinion_publication_types_are_editorial(pt: str) -> None:
    got = classify_design([JA, pt])
    assert (got.design, got.level) == ("editorial", "5")
    assert any(f"'{pt}'" in r for r in got.reasons)


def test_design_cases_cover_every_design() -> None:
    assert {d for _, _, d, _ in DESIGN_CASES} == set(DESIGNS)


def test_grade_rct_outranks_case_report() -> None:
    rct = classify_design(["Randomized Controlled Trial"])
    report = classify_design(["Case Reports"])
    assert rct.rank > report.rank
    assert sorted([report.level, rct.level]) == [rct.level, report.level]


def test_meta_analysis_of_rcts_outranks_a_single_rct_which_outranks_observational_synthesis(
) -> None:
    ma = classify_design(["Meta-Analysis"], abstract="Eight RCTs were included.")
    rct = classify_design(["Randomized Controlled Trial"])
    sr_obs = classify_design(["Systematic Review"], abstract="Observational studies only.")
    cohort = classify_design([JA], ["Cohort Studies"])
    assert ma.rank > rct.rank > sr_obs.rank > cohort.rank
    assert ma.rank >= RANK_RANDOMISED_SYNTHESIS > sr_obs.rank


def test_levels_sort_as_strings_strongest_first_and_ranks_agree() -> None:
    levels = list(EVIDENCE_LEVELS)
    assert sorted(levels) == levels
    by_level: dict[str, list[int]] = {}
    for (design, level), rank in DESIGN_RANKS.items():
        assert design in DESIGNS and level in EVIDENCE_LEVELS
        by_level.setdefault(level, []).append(rank)
    for stronger, weaker in zip(levels, levels[1:], strict=False):
        assert min(by_level[stronger]) > max(by_level[weaker]), (stronger, weaker)


def test_animal_and_in_vitro_rank_below_expert_opinion() -> None:
    editorial = classify_design(["Editorial"])
    assert classify_design([JA], ["Animals"]).rank < editorial.rank
    assert classify_design([JA], ["Cells, Cultured"]).rank < editorial.rank
    assert classify_design([JA]).rank < classify_design([JA], ["Animals"]).rank


def test_design_reasons_name_the_cues_used() -> None:
    got = classify_design([JA], ["Humans"], title="Ketamine: a randomized trial")
    assert any("title says 'randomized'" in r for r in got.reasons)
    assert any("give no design" in r for r in got.reasons)
    assert got.reasons[-1].startswith("design rct, evidence level 1b")


# ---------------------------------------------------------------------------------------
# study_flags
# ---------------------------------------------------------------------------------------


def _codes(flags: tuple[grading.Flag, ...]) -> list[str]:
    return [f.code for f in flags]


def test_retracted_publication_type_flags_retracted() -> None:
    flags = study_flags(publication_types=[JA, "Retracted Publication"])
    assert _codes(flags) == ["retracted"]
    assert "'Retracted Publication'" in flags[0].reason


def test_retraction_in_link_flags_retracted_and_names_the_notice() -> None:
    flags = study_flags(publication_types=[JA], comments_corrections=[("RetractionIn", "123")])
    assert _codes(flags) == ["retracted"]
    assert "PMID 123" in flags[0].reason


def test_database_retraction_status_true_flags_retracted() -> None:
    assert _codes(study_flags(publication_types=[JA], retracted=True)) == ["retracted"]
    assert study_flags(publication_types=[JA], retracted=None) == ()
    assert study_flags(publication_types=[JA], retracted=False) == ()


def test_record_retraction_wins_over_database_saying_not_retracted() -> None:
    flags = study_flags(publication_types=["Retracted Publication"], retracted=False)
    assert _codes(flags) == ["retracted"]
    assert "database says not retracted" in flags[0].reason


def test_retraction_notice_is_flagged_separately() -> None:
    by_type = study_flags(publication_types=["Retraction of Publication"])
    by_link = study_flags(publication_types=[JA], comments_corrections=[("RetractionOf", "7")])
    assert _codes(by_type) == _codes(by_link) == ["retraction_notice"]
    assert "PMID 7" in by_link[0].reason


def test_expression_of_concern_link_and_type_are_flagged() -> None:
    linked = study_flags(publication_types=[JA],
                         comments_corrections=[("ExpressionOfConcernIn", None)])
    notice = study_flags(publication_types=["Expression of Concern"])
    assert _codes(linked) == ["expression_of_concern"]
    # The notice itself is not a study under concern: its design (a notice) says what it is.
    assert _codes(notice) == []
    assert classify_design(["Expression of Concern"]).design == "editorial"
    assert "ExpressionOfConcernIn" in linked[0].reason


def test_erratum_in_is_flagged_and_comment_in_is_not() -> None:
    flags = study_flags(publication_types=[JA],
                        comments_corrections=[("CommentIn", "1"), ("ErratumIn", "2")])
    assert _codes(flags) == ["erratum"]
    assert "PMID 2" in flags[0].reason


@pytest.mark.parametrize(("languages", "flagged"), [
    (["ger"], True), (["eng"], False), (["ger", "eng"], False), ([], False), (["ENG"], False),
])
def test_not_english_flag_follows_languages(languages: list[str], flagged: bool) -> None:
    flags = study_flags(publication_types=[JA], languages=languages)
    assert _codes(flags) == (["not_english"] if flagged else [])


def test_preprint_is_flagged() -> None:
    flags = study_flags(publication_types=["Preprint"])
    assert _codes(flags) == ["preprint"]
    assert "not peer reviewed" in flags[0].reason


def test_all_flags_come_once_each_in_declared_order() -> None:
    flags = study_flags(
        publication_types=["Preprint", "Retracted Publication", "Retraction of Publication",
                           "Expression of Concern"],
        comments_corrections=[("ErratumIn", "1"), ("RetractionIn", "2"), ("RetractionIn", "3"),
                              ("ExpressionOfConcernIn", "4"),
                              ("CorrectedandRepublishedIn", "5")],
        languages=["fre"], deleted=True,
    )
    assert _codes(flags) == list(FLAG_CODES)


def test_corrected_and_republished_is_its_own_flag_not_an_erratum() -> None:
    flags = study_flags(publication_types=[JA],
                        comments_corrections=[("CorrectedandRepublishedIn", "90000777")])
    assert _codes(flags) == ["corrected_and_republished"]
    assert "PMID 90000777" in flags[0].reason


def test_parser_flags_are_the_grading_flags() -> None:
    from ingest.pubmed_xml import parse_pubmed_bytes
    from tests.pubmed_records import article_set, article_xml

    [record] = parse_pubmed_bytes(article_set(article_xml(
        "90000778", title="Ketamine", retracted_in="90000779", language="ger")))
    assert record.flags() == study_flags(
        publication_types=record.publication_types,
        comments_corrections=[(c.ref_type, c.pmid) for c in record.comments_corrections],
        languages=record.languages)
    assert record.is_retracted and _codes(record.flags()) == ["retracted", "not_english"]


# ---------------------------------------------------------------------------------------
# assess_indirectness
# ---------------------------------------------------------------------------------------

ESKETAMINE_TITLE = (
    "Efficacy of flexibly dosed esketamine nasal spray combined with a newly initiated oral "
    "antidepressant in treatment-resistant depression: a randomized double-blind trial"
)


def _dims(claim: str, **study: Any) -> list[str]:
    return [m.dimension for m in assess_indirectness(claim, **study).mismatches]


def test_iv_ketamine_claim_vs_esketamine_nasal_spray_study_mismatches_route_and_drug() -> None:
    result = assess_indirectness(
        "IV ketamine infusions relieve treatment-resistant depression within hours.",
        study_title=ESKETAMINE_TITLE,
        study_mesh=["Administration, Intranasal", "Depressive Disorder, Treatment-Resistant",
                    "Ketamine", "Humans"],
    )
    assert result.indirect
    assert result.mismatches == (
        Mismatch("intervention", ("ketamine",), ("esketamine",)),
        Mismatch("route", ("intravenous infusion",), ("nasal spray",)),
    )
    assert any(r.startswith("condition: the study") for r in result.reasons)


def test_depression_claim_vs_eating_disorder_review_mismatches_condition() -> None:
    result = assess_indirectness(
        "Ketamine therapy has a high success rate for depression.",
        study_title="Ketamine in the treatment of eating disorders: a review",
        study_mesh=["Feeding and Eating Disorders", "Ketamine", "Humans"],
    )
    assert not result.on_topic
    assert result.mismatches == (
        Mismatch("condition", ("depression",), ("eating disorders",), blocking=True),
    )


def test_claim_naming_no_condition_is_not_flagged_on_condition() -> None:
    result = assess_indirectness(
        "Ketamine therapy has minimal side effects.",
        study_title="Ketamine in the treatment of eating disorders: a review",
    )
    assert not result.indirect and result.on_topic
    assert ("condition: neither the claim nor its article names a condition, so it is not "
            "compared") in result.reasons


def test_subgroup_study_covers_broader_claim() -> None:
    result = assess_indirectness("Ketamine helps depression.",
                                 study_title="Ketamine for treatment-resistant depression")
    assert not result.indirect
    assert any("covers the claim's 'depression'" in r for r in result.reasons)


def test_broader_study_for_subgroup_claim_is_population_mismatch() -> None:
    result = assess_indirectness("Ketamine works for treatment-resistant depression.",
                                 study_title="Ketamine in major depressive disorder")
    assert result.mismatches == (
        Mismatch("population", ("treatment-resistant depression",), ("depression",)),
    )


def test_sibling_condition_is_condition_mismatch() -> None:
    assert _dims("Ketamine treats bipolar depression.",
                 study_title="Ketamine for treatment-resistant depression") == ["condition"]


def test_alcohol_study_covers_substance_use_claim() -> None:
    assert _dims("Ketamine may help substance use disorders.",
                 study_title="Ketamine for alcohol use disorder") == []


def test_chronic_pain_claim_vs_postoperative_pain_study_mismatches_condition() -> None:
    assert _dims("Ketamine relieves chronic pain.",
                 study_title="Ketamine for postoperative pain after spine surgery") == [
        "condition"]


def test_respiratory_depression_is_not_the_condition_depression() -> None:
    result = assess_indirectness(
        "Ketamine relieves depression.",
        study_title="Respiratory depression after ketamine sedation",
        study_mesh=["Ketamine"],
    )
    assert result.mismatches == (Mismatch("condition", ("depression",), (), blocking=True),)


def test_study_naming_no_condition_is_flagged_for_a_condition_claim() -> None:
    result = assess_indirectness("Ketamine relieves PTSD.",
                                 study_title="Ketamine pharmacology: an update")
    assert result.mismatches == (Mismatch("condition", ("PTSD",), (), blocking=True),)


def test_abstract_is_read_when_title_and_mesh_name_no_condition() -> None:
    assert _dims("Ketamine relieves PTSD.", study_title="Ketamine: a randomized trial",
                 study_abstract="Veterans with chronic PTSD received ketamine.") == []


def test_abstract_comorbidity_ignored_when_title_names_the_condition() -> None:
    assert _dims("Ketamine relieves depression.",
                 study_title="Ketamine for anorexia nervosa",
                 study_abstract="Comorbid depression improved.") == ["condition"]


def test_a_study_of_one_listed_condition_bears_on_that_part_of_the_claim() -> None:
    result = assess_indirectness("Ketamine treats depression, anxiety and PTSD.",
                                 study_title="Ketamine for depression")
    assert result.on_topic and result.mismatches == ()
    assert any("PTSD" in r and "bears on the rest of the claim" in r for r in result.reasons)
    none = assess_indirectness("Ketamine treats anxiety and PTSD.",
                               study_title="Ketamine for depression")
    assert none.mismatches == (Mismatch("condition", ("PTSD", "anxiety"), ("depression",),
                                        blocking=True),)


def test_s_ketamine_is_esketamine_not_ketamine() -> None:
    assert _dims("Ketamine eases depression.",
                 study_title="S-ketamine in depression") == ["intervention"]
    assert _dims("Esketamine eases depression.",
                 study_title="(S)-ketamine in depression") == []


def test_title_drug_wins_over_ketamine_mesh_heading() -> None:
    result = assess_indirectness("Ketamine eases depression.",
                                 study_title="Esketamine in depression", study_mesh=["Ketamine"])
    assert result.mismatches == (Mismatch("intervention", ("ketamine",), ("esketamine",)),)


def test_drug_from_mesh_when_title_and_abstract_name_none() -> None:
    assert _dims("Ketamine eases depression.", study_title="Rapid relief of depression",
                 study_mesh=["Ketamine"]) == []


def test_other_intervention_is_intervention_mismatch() -> None:
    assert _dims("Ketamine eases depression.",
                 study_title="Electroconvulsive therapy for depression") == ["intervention"]


def test_claim_without_drug_is_not_compared_on_intervention() -> None:
    result = assess_indirectness("Relief within hours for depression.",
                                 study_title="Esketamine in depression")
    assert not result.indirect and result.on_topic
    assert any(r.startswith("intervention: neither the claim nor its article names")
               for r in result.reasons)


def test_route_not_flagged_when_study_names_none() -> None:
    result = assess_indirectness("IV ketamine eases depression.",
                                 study_title="Ketamine in depression")
    assert not result.indirect
    assert "route: the study names no route or form, so it is not compared" in result.reasons


def test_any_shared_route_is_enough_for_a_claim_naming_several() -> None:
    claim = ("It can be delivered through intravenous (IV) infusion, intramuscular "
             "injection, nasal spray, or oral lozenges.")
    assert _dims(claim, study_title="Intramuscular ketamine in depression") == []
    assert _dims(claim, study_title="Oral ketamine for depression") == ["route"]


def test_oral_antidepressant_is_not_an_oral_ketamine_route() -> None:
    result = assess_indirectness("Oral ketamine eases depression.",
                                 study_title=ESKETAMINE_TITLE)
    route = [m for m in result.mismatches if m.dimension == "route"]
    assert route == [Mismatch("route", ("oral",), ("nasal spray",))]


def test_route_from_mesh() -> None:
    assert _dims("IV ketamine eases depression.", study_title="Ketamine in depression",
                 study_mesh=["Administration, Intranasal"]) == ["route"]


def test_animal_study_is_population_mismatch() -> None:
    by_title = assess_indirectness("Ketamine eases depression.",
                                   study_title="Antidepressant effects of ketamine in mice")
    by_mesh = assess_indirectness("Ketamine eases depression.",
                                  study_title="Ketamine and depression-like behaviour",
                                  study_mesh=["Animals", "Ketamine"])
    assert by_title.mismatches == by_mesh.mismatches == (
        Mismatch("population", ("people",), ("animals",)),)


def test_healthy_volunteer_study_is_population_mismatch_for_condition_claim() -> None:
    result = assess_indirectness("Ketamine relieves chronic pain.",
                                 study_title="Ketamine pharmacokinetics in healthy volunteers")
    assert Mismatch("population", ("chronic pain",), ("healthy volunteers",)) in (
        result.mismatches)


def test_age_groups_must_overlap() -> None:
    assert _dims("Ketamine is safe for teens with depression.",
                 study_title="Ketamine for depression in older adults",
                 study_mesh=["Aged", "Humans"]) == ["population"]
    assert _dims("Ketamine is safe for teens with depression.",
                 study_title="Ketamine for depression",
                 study_mesh=["Adolescent", "Adult", "Humans"]) == []


def test_mesh_star_and_qualifier_are_ignored() -> None:
    assert _dims("Ketamine eases depression.", study_title="Rapid relief",
                 study_mesh=["*Depressive Disorder, Major/drug therapy",
                             "Ketamine/therapeutic use"]) == []


def test_indirectness_reasons_cover_every_dimension() -> None:
    result = assess_indirectness("Ketamine eases depression.", study_title="Ketamine")
    for dimension in grading.INDIRECTNESS_DIMENSIONS:
        assert any(r.startswith(f"{dimension}:") for r in result.reasons), dimension


def test_lexicons_have_unique_keys_known_parents_and_valid_patterns() -> None:
    from evidence import vocabulary

    for kind in vocabulary.KINDS:
        lexicon = vocabulary.concepts(kind)
        keys = [c.key for c in lexicon]
        assert len(keys) == len(set(keys))
        for concept in lexicon:
            assert concept.patterns and concept.label
            assert concept.parent is None or concept.parent in keys


# ---------------------------------------------------------------------------------------
# suggest_certainty
# ---------------------------------------------------------------------------------------


def ev(design: str, *, stance: str | None = "supports", indirect: bool = False,
       retracted: bool = False, relevant: bool = True, flags: tuple[str, ...] = (),
       label: str = "", level: str | None = None) -> LinkEvidence:
    rank = next(r for (d, lv), r in DESIGN_RANKS.items()
                if d == design and (level is None or lv == level))
    return LinkEvidence(design, rank, relevant, stance, indirect, retracted, flags, label)


def test_certainty_rct_starts_high() -> None:
    got = suggest_certainty([ev("rct")])
    assert (got.level, got.start_level, got.downgrades) == ("high", "high", ())


def test_certainty_systematic_review_of_rcts_starts_high_other_syntheses_low() -> None:
    assert suggest_certainty([ev("systematic_review", level="1a")]).level == "high"
    assert suggest_certainty([ev("meta_analysis", level="2a")]).level == "low"


def test_certainty_observational_starts_low() -> None:
    for design in ("cohort", "case_control", "observational", "non_randomised_trial"):
        assert suggest_certainty([ev(design)]).start_level == "low", design


def test_certainty_case_series_and_opinion_start_very_low() -> None:
    for design in ("case_series", "case_report", "narrative_review", "editorial",
                   "guideline", "unknown"):
        assert suggest_certainty([ev(design)]).level == "very_low", design


def test_certainty_rct_all_indirect_is_moderate() -> None:
    got = suggest_certainty([ev("rct", indirect=True, label="PMID 1")])
    assert (got.start_level, got.level) == ("high", "moderate")
    assert [d for d, _ in got.downgrades] == ["indirectness"]
    assert "PMID 1" in got.downgrades[0][1]


def test_certainty_one_direct_best_study_avoids_indirectness() -> None:
    got = suggest_certainty([ev("rct", indirect=True), ev("rct")])
    assert got.level == "high"


def test_certainty_indirectness_judged_on_best_evidence_only() -> None:
    got = suggest_certainty([ev("rct", indirect=True), ev("cohort")])
    assert got.level == "moderate"


def test_certainty_only_retracted_is_very_low_and_says_why() -> None:
    got = suggest_certainty([ev("rct", retracted=True, label="PMID 9")])
    assert got.level == "very_low"
    assert "excluded 1 study (PMID 9): retracted, never counts as evidence" in got.reasons
    assert "no relevant evidence apart from retracted studies" in got.reasons


def test_certainty_retracted_flag_also_excludes() -> None:
    got = suggest_certainty([ev("rct", flags=("retracted",)), ev("cohort")])
    assert (got.start_level, got.level) == ("low", "low")
    assert any(r.startswith("excluded 1 study") and "retracted" in r for r in got.reasons)


def test_certainty_only_animal_evidence_is_very_low_with_reason() -> None:
    got = suggest_certainty([ev("animal"), ev("in_vitro")])
    assert got.level == "very_low"
    assert any("only animal or in-vitro evidence" in r for r in got.reasons)


def test_certainty_conflicting_stances_downgrade_inconsistency() -> None:
    got = suggest_certainty([ev("rct", stance="supports"), ev("rct", stance="contradicts")])
    assert got.level == "moderate"
    assert [d for d, _ in got.downgrades] == ["inconsistency"]


def test_certainty_partial_support_counts_as_support_for_inconsistency() -> None:
    got = suggest_certainty([ev("cohort", stance="partially_supports"),
                             ev("cohort", stance="contradicts")])
    assert got.level == "very_low"
    assert [d for d, _ in got.downgrades] == ["inconsistency"]


def test_certainty_weaker_contradiction_is_noted_not_rated_down() -> None:
    got = suggest_certainty([ev("rct"), ev("case_report", stance="contradicts")])
    assert got.level == "high"
    assert any("weaker studies disagree" in r for r in got.reasons)


def test_certainty_downgrades_add_up_and_stop_at_very_low() -> None:
    two = suggest_certainty([ev("rct", indirect=True), ev("rct", stance="contradicts",
                                                          indirect=True)])
    assert two.level == "low"
    floor = suggest_certainty([ev("cohort", indirect=True),
                               ev("cohort", stance="contradicts", indirect=True)])
    assert floor.level == "very_low" and len(floor.downgrades) == 2
    assert any("cannot lower" in r for r in floor.reasons)


def test_certainty_expression_of_concern_on_all_best_studies_is_risk_of_bias() -> None:
    got = suggest_certainty([ev("rct", flags=("expression_of_concern",))])
    assert [d for d, _ in got.downgrades] == ["risk_of_bias"]
    assert got.level == "moderate"
    assert suggest_certainty([ev("rct", flags=("expression_of_concern",)),
                              ev("rct")]).level == "high"


def test_certainty_no_evidence_is_very_low() -> None:
    for evidence in ([], [ev("rct", relevant=False)]):
        got = suggest_certainty(evidence)
        assert got.level == "very_low"
        assert "no relevant evidence" in got.reasons


def test_certainty_does_not_address_is_excluded() -> None:
    got = suggest_certainty([ev("rct", stance="does_not_address"), ev("cohort")])
    assert got.start_level == "low"
    assert any("not to address the claim" in r for r in got.reasons)


def test_certainty_unassessed_stance_still_counts() -> None:
    got = suggest_certainty([ev("rct", stance=None)])
    assert (got.level, got.basis) == ("high", "metadata")
    assert got.reasons[0].startswith("metadata-only suggestion: no reviewer has assessed")


def test_certainty_from_assessments_uses_only_the_assessed_links() -> None:
    got = suggest_certainty([ev("case_series", stance="supports", label="PMID 1"),
                             ev("rct", stance=None, label="PMID 2")])
    assert got.basis == "assessments"
    assert got.reasons[0] == "from reviewers' assessments of 1 study (PMID 1)"
    assert "1 linked study not assessed yet, not considered" in got.reasons
    # A case series alone: starts low, rated down for having no control group.
    assert (got.start_level, got.level) == ("low", "very_low")
    assert got.downgrades[0][0] == "risk_of_bias" and "no control group" in got.downgrades[0][1]


def test_certainty_contradicting_evidence_of_similar_level_is_inconsistency() -> None:
    got = suggest_certainty([ev("rct", stance="supports", label="PMID 1"),
                             ev("rct", stance="contradicts", label="PMID 2")])
    assert [d for d, _ in got.downgrades] == ["inconsistency"]
    assert got.level == "moderate"
    weaker = suggest_certainty([ev("rct", stance="supports"),
                                ev("case_report", stance="contradicts")])
    assert weaker.level == "high" and not weaker.downgrades


def test_certainty_retracted_never_counts_even_when_assessed_as_supporting() -> None:
    got = suggest_certainty([ev("rct", stance="supports", retracted=True, label="PMID 1"),
                             ev("cohort", stance="supports", label="PMID 2")])
    assert got.start_level == "low"
    assert any(r.startswith("excluded 1 study (PMID 1): retracted") for r in got.reasons)


def test_certainty_relevance_low_is_indirect_and_none_excludes() -> None:
    low = LinkEvidence("rct", 90, True, "supports", False, False, (), "PMID 1", "low")
    none = LinkEvidence("rct", 90, True, "supports", False, False, (), "PMID 2", "none")
    got = suggest_certainty([low])
    assert [d for d, _ in got.downgrades] == ["indirectness"]
    assert "relevance rated low" in got.downgrades[0][1]
    assert suggest_certainty([none]).level == "very_low"


def test_certainty_indirectness_names_the_dimensions() -> None:
    item = LinkEvidence("rct", 90, True, "supports", True, False, (), "PMID 3",
                        indirect_dimensions=("population",))
    got = suggest_certainty([item])
    assert got.level == "moderate"
    assert "PMID 3: population" in got.downgrades[0][1]


def test_certainty_only_uncontrolled_evidence_is_at_most_low() -> None:
    for design in ("case_series", "case_report"):
        many = [ev(design, stance="supports", label=f"PMID {i}") for i in range(5)]
        got = suggest_certainty(many)
        assert got.start_level == "low" and got.level == "very_low"
        assert any("no control group" in reason for _, reason in got.downgrades)


def test_certainty_leaves_imprecision_and_publication_bias_to_reviewer() -> None:
    got = suggest_certainty([ev("rct")])
    assert any("imprecision and publication bias not assessed" in r for r in got.reasons)
    assert got.reasons[-1] == "suggested certainty: high"


def test_certainty_downgrade_domains_are_grade_domains() -> None:
    got = suggest_certainty([ev("rct", indirect=True, flags=("expression_of_concern",)),
                             ev("rct", stance="contradicts", indirect=True,
                                flags=("expression_of_concern",))])
    assert [d for d, _ in got.downgrades] == ["risk_of_bias", "inconsistency", "indirectness"]
    assert {d for d, _ in got.downgrades} <= set(GRADE_DOMAINS)
    assert got.level == "very_low"


def test_certainty_rejects_unknown_design_and_stance() -> None:
    with pytest.raises(ValueError, match="unknown design"):
        suggest_certainty([LinkEvidence("trial", 90, True, "supports", False, False)])
    with pytest.raises(ValueError, match="unknown stance"):
        suggest_certainty([LinkEvidence("rct", 90, True, "agrees", False, False)])


def test_grade_levels_are_the_one_certainty_vocabulary_strongest_first() -> None:
    from evidence import models, vocabulary

    assert GRADE_LEVELS == ("high", "moderate", "low", "very_low")
    assert GRADE_LEVELS is vocabulary.CERTAINTY is models.CERTAINTY
    assert list(EVIDENCE_LEVELS)[:2] == ["1a", "1b"]


def test_vocabularies_match_the_database_schema() -> None:
    models = pytest.importorskip("evidence.models")
    assert set(GRADE_LEVELS) == set(models.CERTAINTY)
    assert GRADE_DOMAINS == tuple(models.GRADE_DOMAINS)
    assert grading.STANCES == tuple(models.STANCES)


@pytest.mark.parametrize(("suggested", "chosen", "departs"), [
    ("high", "high", False), ("high", "moderate", True), ("very_low", "low", True),
])
def test_certainty_departs_when_reviewer_chooses_another_level(
    suggested: str, chosen: str, departs: bool
) -> None:
    assert certainty_departs(suggested, chosen) is departs


def test_certainty_departs_rejects_unknown_levels() -> None:
    with pytest.raises(ValueError, match="unknown certainty"):
        certainty_departs("high", "very low")


def test_reasons_count_studies_not_readings() -> None:
    """Two reviewers reading one study make one study with two readings, not two studies."""
    one = [dataclasses.replace(ev("case_series", label=f"PMID 90000104 (reading {i})"),
                               study="PMID 90000104") for i in (1, 2)]
    reasons = " | ".join(suggest_certainty(one).reasons)
    assert "1 study, 2 readings (PMID 90000104 (reading 1), PMID 90000104 (reading 2))" in reasons
    assert "2 studies" not in reasons
    two = [dataclasses.replace(ev("case_series", label=f"PMID 9000010{i}"),
                               study=f"PMID 9000010{i}") for i in (1, 2)]
    assert "2 studies (PMID 90000101, PMID 90000102)" in " | ".join(
        suggest_certainty(two).reasons)


# ---------------------------------------------------------------------------------------
# Cue prefilters: a cheap substring check must never hide a match of the pattern
# ---------------------------------------------------------------------------------------

# A phrase for every branch of the patterns whose prefilter is a phrase, as cleaned text.
_CUE_PHRASES: list[tuple[str, str]] = [
    ("_CUE_SR_ABSTRACT", "We conducted a meta-analysis of 12 trials."),
    ("_CUE_SR_ABSTRACT", "We performed an updated systematic review."),
    ("_CUE_SR_ABSTRACT", "Databases were systematically searched."),
    ("_CUE_TRIAL", "A placebo-controlled study."),
    ("_CUE_TRIAL", "An open label extension."),
    ("_CUE_TRIAL", "A single-arm study of ketamine."),
    ("_CUE_TRIAL", "A phase III multicentre trial."),
    ("_CUE_TRIAL", "This clinical trial enrolled adults."),
    ("_CUE_CASE_SERIES", "A case series of 12 patients."),
    ("_CUE_CASE_SERIES", "A retrospective chart review."),
    ("_CUE_CASE_CONTROL", "A nested case-control study."),
    ("_CUE_CASE_CONTROL", "A CASE CONTROL design."),
    ("_CUE_UNCONTROLLED", "A single group design."),
    ("_CUE_UNCONTROLLED", "A Single-Arm pilot."),
    ("_CUE_UNCONTROLLED", "A non controlled study."),
    ("_CUE_UNCONTROLLED", "An uncontrolled study."),
    ("_CUE_UNCONTROLLED", "Treated without a comparison group."),
    ("_CUE_UNCONTROLLED", "There was no comparator arm."),
    ("_CUE_UNCONTROLLED", "There was no control condition."),
    ("_CUE_UNCONTROLLED", "A before-and-after study."),
    ("_CUE_UNCONTROLLED_WEAK", "Scores were compared pre- and post-treatment."),
    ("_CUE_UNCONTROLLED_WEAK", "Measured pre and post intervention."),
    ("_CUE_UNCONTROLLED_WEAK", "A prepost design."),
    ("_CUE_UNCONTROLLED_WEAK", "A pre-post comparison."),
    ("_CUE_UNCONTROLLED_WEAK", "A pre- post comparison."),
    ("_CUE_UNCONTROLLED_WEAK", "An OPEN-LABEL study."),
    ("_CUE_UNCONTROLLED_WEAK", "A pilot study."),
    ("_CUE_IN_VITRO", "Cultured hippocampal neurons were imaged."),
]


@pytest.mark.parametrize(("name", "text"), _CUE_PHRASES)
def test_a_cue_prefilter_lets_every_branch_of_its_pattern_through(name: str, text: str) -> None:
    pattern = getattr(grading, name)
    assert pattern.search(text), "the phrase must match the pattern itself"
    cleaned = grading._clean(text)
    assert grading._cue(pattern, cleaned) == pattern.search(cleaned).group(0)


def test_a_meta_analysis_named_only_in_the_abstract_is_a_synthesis() -> None:
    # The abstract's cue without "systematic": hidden by a prefilter before, so the record
    # fell through to a narrative review.
    result = classify_design(
        ["Journal Article", "Review"], title="Ketamine for depression",
        abstract="We conducted a meta-analysis of randomized controlled trials of ketamine.")
    assert result.design == grading.META_ANALYSIS
    assert any("abstract says 'We conducted a meta-analysis'" in r for r in result.reasons)


def test_cue_prefilters_hide_no_match_over_the_scifact_abstracts() -> None:
    corpus = shared_path("datasets", "scifact", "corpus.jsonl")
    texts: list[str] = []
    for doc in load_corpus(corpus):
        texts.append(grading._clean(doc.title))
        texts.append(grading._clean(doc.abstract))
    assert len(texts) > 10_000
    hits = skipped = 0
    for pattern, words in grading._PREFILTER.items():
        for text in texts:
            match = pattern.search(text)
            assert grading._cue(pattern, text) == (match.group(0) if match else None), (
                pattern.pattern, text)
            hits += match is not None
            folded = text.casefold()
            skipped += not any(w in folded for w in words)
    assert hits > 1000  # the check compares real matches, not only misses
    # ... and the prefilters do their job: most pattern scans are skipped.
    assert skipped > 0.8 * len(texts) * len(grading._PREFILTER)
