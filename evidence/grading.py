"""Evidence rules: study design, evidence level, study flags, indirectness, GRADE suggestion.

Every rule here is a pure function over plain data (strings and tuples, no database) and
returns its result together with the reasons for it. The reasons are what a reviewer sees
next to a suggestion and what an auditor reads later, so each one names the publication
type, MeSH heading, title/abstract phrase or rule that produced it.

Evidence levels
---------------
``classify_design`` gives each study an Oxford CEBM-style level (after the 2009 table),
extended at the bottom for non-human research. Levels sort as strings from strongest to
weakest (``sorted(levels)`` puts "1a" first); ``rank`` sorts the other way (higher is
stronger) and also orders designs within a level.

====  ==========================================================================  ====
level meaning                                                                     rank
====  ==========================================================================  ====
1a    systematic review / meta-analysis that includes randomised trials           95-100
1b    randomised controlled trial                                                 90
2a    systematic review / meta-analysis of non-randomised studies, or one whose   75-80
      included designs the record does not state (not assumed to be randomised)
2b    cohort study; non-randomised (controlled or single-arm) trial               60-65
3     case-control study; other observational study (cross-sectional, registry,   45-50
      evaluation or validation study)
4     case series; case report                                                    35-40
5     expert opinion: guideline / consensus statement, narrative review,          20-30
      editorial, comment, letter, news
6     animal or in-vitro (bench) research: mechanism, not an effect in people     10-15
unknown  the record does not show the design                                       0
====  ==========================================================================  ====

A guideline sits at level 5 because the record is a statement of recommendations; the
studies a guideline cites carry their own levels and should be linked and graded
directly.

GRADE suggestion
----------------
``suggest_certainty`` applies the GRADE starting rule (randomised evidence starts high,
non-randomised evidence starts low) plus the downgrades that can be read from linked,
reviewed evidence: indirectness, inconsistency and (for expressions of concern) risk of
bias. Imprecision and publication bias need effect sizes and sample sizes the database does
not hold, so they are left to the reviewer, and the reasons say so. Upgrades (large effect,
dose-response) are likewise the reviewer's judgement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

# ---------------------------------------------------------------------------------------
# Designs and levels
# ---------------------------------------------------------------------------------------

META_ANALYSIS = "meta_analysis"
SYSTEMATIC_REVIEW = "systematic_review"
RCT = "rct"
NON_RANDOMISED_TRIAL = "non_randomised_trial"
COHORT = "cohort"
CASE_CONTROL = "case_control"
OBSERVATIONAL = "observational"
CASE_SERIES = "case_series"
CASE_REPORT = "case_report"
NARRATIVE_REVIEW = "narrative_review"
GUIDELINE = "guideline"
EDITORIAL = "editorial"
ANIMAL = "animal"
IN_VITRO = "in_vitro"
UNKNOWN = "unknown"

DESIGNS: tuple[str, ...] = (
    META_ANALYSIS, SYSTEMATIC_REVIEW, RCT, NON_RANDOMISED_TRIAL, COHORT, CASE_CONTROL,
    OBSERVATIONAL, CASE_SERIES, CASE_REPORT, NARRATIVE_REVIEW, GUIDELINE, EDITORIAL,
    ANIMAL, IN_VITRO, UNKNOWN,
)
"""Every design ``classify_design`` can return."""

EVIDENCE_LEVELS: dict[str, str] = {
    "1a": "systematic review or meta-analysis including randomised trials",
    "1b": "randomised controlled trial",
    "2a": "systematic review or meta-analysis of non-randomised or unstated designs",
    "2b": "cohort study or non-randomised trial",
    "3": "case-control or other observational study",
    "4": "case series or case report",
    "5": "expert opinion: guideline, narrative review, editorial, comment, letter",
    "6": "animal or in-vitro research (mechanism)",
    "unknown": "design not shown by the record",
}
"""Evidence levels, strongest first (Oxford CEBM 2009 style, with 6 for non-human work)."""

DESIGN_RANKS: dict[tuple[str, str], int] = {
    (META_ANALYSIS, "1a"): 100,
    (SYSTEMATIC_REVIEW, "1a"): 95,
    (RCT, "1b"): 90,
    (META_ANALYSIS, "2a"): 80,
    (SYSTEMATIC_REVIEW, "2a"): 75,
    # Investigators assigned the exposure, so a trial sits just above a cohort.
    (NON_RANDOMISED_TRIAL, "2b"): 65,
    (COHORT, "2b"): 60,
    (CASE_CONTROL, "3"): 50,
    (OBSERVATIONAL, "3"): 45,
    (CASE_SERIES, "4"): 40,
    (CASE_REPORT, "4"): 35,
    (GUIDELINE, "5"): 30,
    (NARRATIVE_REVIEW, "5"): 25,
    (EDITORIAL, "5"): 20,
    (ANIMAL, "6"): 15,
    (IN_VITRO, "6"): 10,
    (UNKNOWN, "unknown"): 0,
}
"""Sort key for every (design, level) pair ``classify_design`` returns; higher = stronger."""

RANK_RANDOMISED_SYNTHESIS = DESIGN_RANKS[(SYSTEMATIC_REVIEW, "1a")]
"""Lowest rank of a systematic review / meta-analysis that includes randomised trials."""


@dataclass(frozen=True, slots=True)
class DesignAssessment:
    """A study's design, evidence level and the cues that decided them.

    Attributes
    ----------
    design : str
        One of `DESIGNS`.
    level : str
        One of the keys of `EVIDENCE_LEVELS`.
    rank : int
        Sort key, higher is stronger (see `DESIGN_RANKS`).
    reasons : tuple of str
        The publication types, MeSH headings and title/abstract cues used, in order.
    """

    design: str
    level: str
    rank: int
    reasons: tuple[str, ...]


# Publication types (compared case-insensitively).
_PT_META = ("meta-analysis", "network meta-analysis")
_PT_SR = ("systematic review",)
_PT_RCT = ("randomized controlled trial",)
_PT_VETERINARY = (
    "randomized controlled trial, veterinary", "clinical trial, veterinary",
    "observational study, veterinary",
)
_PT_TRIAL = (
    "clinical trial", "controlled clinical trial", "clinical trial, phase i",
    "clinical trial, phase ii", "clinical trial, phase iii", "clinical trial, phase iv",
    "pragmatic clinical trial", "adaptive clinical trial", "equivalence trial",
)
_PT_OBSERVATIONAL = ("observational study", "twin study")
_PT_WEAK = ("comparative study", "clinical study", "evaluation study", "validation study")
_PT_CASE_REPORT = ("case reports",)
_PT_GUIDELINE = (
    "practice guideline", "guideline", "consensus development conference",
    "consensus development conference, nih", "consensus statement",
)
_PT_REVIEW = ("review", "scoping review")
_PT_EDITORIAL = (
    "editorial", "comment", "letter", "news", "newspaper article", "interview",
    "personal narrative", "lecture", "address",
)
_PT_NOTICE = ("retraction of publication", "published erratum", "expression of concern")
_PT_PROTOCOL = ("clinical trial protocol",)

# MeSH headings (descriptor names, compared case-insensitively).
_MESH_HUMANS = "humans"
_MESH_ANIMALS = "animals"
_MESH_RANDOM = ("random allocation",)
_MESH_TRIAL = ("double-blind method", "single-blind method", "cross-over studies")
_MESH_COHORT_STRONG = ("cohort studies", "longitudinal studies")
_MESH_COHORT_TEMPORAL = ("prospective studies", "follow-up studies")
_MESH_RETROSPECTIVE = ("retrospective studies",)
_MESH_CASE_CONTROL = ("case-control studies",)
_MESH_CROSS_SECTIONAL = ("cross-sectional studies",)
_MESH_IN_VITRO = (
    "in vitro techniques", "cells, cultured", "cell line", "cell line, tumor",
    "cell culture techniques", "tissue culture techniques", "organ culture techniques",
    "organoids",
)
# Subject headings about a design: indexed when a paper discusses such studies, and on
# systematic reviews that include them, never as the paper's own design.
_MESH_AS_TOPIC = (
    "meta-analysis as topic", "systematic reviews as topic",
    "randomized controlled trials as topic", "clinical trials as topic",
    "controlled clinical trials as topic", "review literature as topic",
)
_MESH_SR_OF_RCTS = ("randomized controlled trials as topic",)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_TAG = re.compile(r"<[^>]+>")

_CUE_SR_TITLE = _rx(r"\bsystematic(?:al)?\s+review|\bmeta-?\s?analy[sz]")
_CUE_MA_TITLE = _rx(r"\bmeta-?\s?analy[sz]")
_CUE_SR_ABSTRACT = _rx(
    r"\bwe\s+(?:conducted|performed|undertook|carried\s+out)\s+(?:a|an\s+updated)\s+"
    r"(?:systematic\s+review|meta-?\s?analysis)|\bsystematically\s+searched"
)
_CUE_RANDOMISED_TITLE = _rx(r"(?<!non-)(?<!non)(?<!non )\brandomi[sz]ed|\brandomly\b")
_CUE_RANDOMISED_ABSTRACT = _rx(
    r"\bwere\s+randomi[sz]ed|\brandomly\s+(?:assigned|allocated)|\bwe\s+randomi[sz]ed"
    r"|\b(?:a|this|our)\s+(?:\w+[- ]){0,3}?randomi[sz]ed\b[^.]{0,60}?\btrial"
)
_CUE_TRIAL = _rx(
    r"\bplacebo[- ]controlled|\bopen[- ]label|\bsingle[- ]arm\b|\bphase\s+(?:i{1,3}v?|[1-4])"
    r"\b[^.]{0,30}\btrial|\bclinical\s+trial\b"
)
_CUE_SR_INCLUDES_RCT = _rx(r"(?<!non-)(?<!non)(?<!non )\brandomi[sz]ed|\bRCTs?\b|\brandomly")
_CUE_SR_INCLUDES_OBS = _rx(
    r"\bcohort|\bobservational|\bcase[- ]control|\bcross[- ]sectional|\bnon-?\s?randomi[sz]ed"
)
_CUE_CASE_SERIES = _rx(r"\bcase\s+series\b|\bchart\s+review")
_CUE_CASE_REPORT = _rx(r"\bcase\s+report\b|\bwe\s+(?:report|present|describe)\s+(?:a|the)\s+case")
_CUE_SEVERAL_CASES = _rx(
    r"\b(?:[2-9]|\d{2,}|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s+"
    r"(?:consecutive\s+)?(?:patients|cases)\b"
)
_CUE_CASE_CONTROL = _rx(r"\bcase[- ]control\b")
_CUE_COHORT = _rx(r"\bcohorts?\b")
_CUE_PROSPECTIVE = _rx(r"\bprospective(?:ly)?\b|\blongitudinal\b")
_CUE_CROSS_SECTIONAL = _rx(r"\bcross[- ]sectional\b")
_CUE_ANIMAL_TITLE = _rx(
    r"\b(?:mice|mouse|murine|rats?|rodents?|zebrafish|primates?|monkeys?|macaques?|rabbits?"
    r"|pigs?|piglets?|swine|dogs?|canine|sheep|ovine|cats?|feline|horses?|equine|drosophila"
    r"|c\.\s?elegans)\b"
)
_CUE_ANIMAL_ABSTRACT = _rx(
    r"\bsprague[- ]dawley\b|\bwistar\b|\bc57bl|\bbalb/c\b|\b(?:knockout|transgenic)\s+mice\b"
)
_CUE_IN_VITRO = _rx(
    r"\bin\s+vitro\b(?!\s+fertili[sz]ation)|\bcell\s+lines?\b|\bcultured\s+(?:\w+\s+)?"
    r"(?:cells|neurons|astrocytes)\b|\bcell\s+cultures?\b|\borganoids?\b"
)


def _clean(text: str) -> str:
    """Text without inline markup, so cues match across ``<i>`` and similar tags."""
    if "<" in text:
        text = _TAG.sub(" ", text)
    return " ".join(text.split())


def _mesh_display(term: str) -> str:
    """Descriptor name of a MeSH entry: drops a major-topic ``*`` and any ``/qualifier``."""
    return term.split("/", 1)[0].strip().lstrip("*").strip()


def _mesh_name(term: str) -> str:
    """`_mesh_display`, casefolded for comparison."""
    return _mesh_display(term).casefold()


def _present(wanted: Iterable[str], have: Mapping[str, str]) -> list[str]:
    """Original spellings of the ``wanted`` (casefolded) terms found in ``have``."""
    return [have[w] for w in wanted if w in have]


def _quote(terms: Iterable[str]) -> str:
    return ", ".join(f"'{t}'" for t in terms)


# Words one of which must occur (case-folded) for a cue pattern to match at all: checking
# them with ``in`` first skips most regex scans of long abstracts (classification is on the
# bulk-load path).
_PREFILTER: dict[re.Pattern[str], tuple[str, ...]] = {
    _CUE_SR_TITLE: ("systemat", "meta"),
    _CUE_MA_TITLE: ("meta",),
    _CUE_SR_ABSTRACT: ("systemat",),
    _CUE_RANDOMISED_TITLE: ("random",),
    _CUE_RANDOMISED_ABSTRACT: ("random",),
    _CUE_TRIAL: ("placebo", "open", "single", "phase", "trial"),
    _CUE_SR_INCLUDES_RCT: ("random", "rct"),
    _CUE_SR_INCLUDES_OBS: ("cohort", "observational", "control", "sectional", "random"),
    _CUE_CASE_SERIES: ("case", "chart"),
    _CUE_CASE_REPORT: ("case",),
    _CUE_SEVERAL_CASES: ("patients", "cases"),
    _CUE_CASE_CONTROL: ("control",),
    _CUE_COHORT: ("cohort",),
    _CUE_PROSPECTIVE: ("prospective", "longitudinal"),
    _CUE_CROSS_SECTIONAL: ("sectional",),
    _CUE_ANIMAL_ABSTRACT: ("sprague", "wistar", "c57bl", "balb", "mice"),
    _CUE_IN_VITRO: ("vitro", "cell", "organoid"),
}


@lru_cache(maxsize=16)
def _folded(text: str) -> str:
    # Several cues read the same title/abstract; fold each text once.
    return text.casefold()


def _cue(pattern: re.Pattern[str], text: str) -> str | None:
    words = _PREFILTER.get(pattern)
    if words is not None:
        folded = _folded(text)
        if not any(w in folded for w in words):
            return None
    match = pattern.search(text)
    return match.group(0) if match else None


def _assessment(design: str, level: str, reasons: list[str]) -> DesignAssessment:
    reasons = [*reasons, f"design {design}, evidence level {level} ({EVIDENCE_LEVELS[level]})"]
    return DesignAssessment(design, level, DESIGN_RANKS[(design, level)], tuple(reasons))


def classify_design(
    publication_types: Sequence[str],
    mesh: Sequence[str] = (),
    *,
    title: str = "",
    abstract: str = "",
) -> DesignAssessment:
    """Classify a PubMed record's study design and give its evidence level.

    Publication types decide first, in this order: notices (retraction, erratum,
    expression of concern), veterinary types, then MeSH "Animals" without "Humans",
    systematic review / meta-analysis, randomised trial, other trial types, observational
    types, case reports, guidelines, reviews, editorial types. When the publication types
    give no design ("Journal Article" alone, or only weak types such as Comparative Study)
    the MeSH design headings and then title/abstract phrases decide. Where signals
    conflict, the stronger design is chosen only when a signal supports it: a trial counts
    as randomised only with the Randomized Controlled Trial type, the "Random Allocation"
    heading or a randomisation phrase; a systematic review reaches level 1a only when the
    record says it includes randomised trials (the heading "Randomized Controlled Trials
    as Topic" on a review counts); an in-vitro heading does not override a human design
    heading; a case-control signal beats cohort words
    (nested case-control studies are drawn from cohorts, the reverse rarely happens).
    "... as Topic" headings (e.g. "Meta-Analysis as Topic") are never a design.

    Parameters
    ----------
    publication_types : sequence of str
        PubMed PublicationType values, e.g. ``["Journal Article", "Review"]``.
    mesh : sequence of str
        MeSH descriptor names; a leading ``*`` and ``/qualifier`` suffixes are ignored.
    title, abstract : str
        Article title and abstract; inline markup is ignored.

    Returns
    -------
    DesignAssessment
        Design, evidence level, rank and the reasons, in the order the rules used them.
    """
    pts = {p.strip().casefold(): p.strip() for p in publication_types if p.strip()}
    heads = {_mesh_name(m): _mesh_display(m) for m in mesh}
    heads.pop("", None)
    title_text = _clean(title)
    abstract_text = _clean(abstract)
    both = f"{title_text} {abstract_text}"
    reasons: list[str] = []

    topic = _present(_MESH_AS_TOPIC, heads)
    if topic:
        reasons.append(f"ignored MeSH {_quote(topic)}: subject headings, not this study's design")
    multicenter = _present(("multicenter study",), pts)
    if multicenter:
        reasons.append("publication type 'Multicenter Study' noted (a modifier, not a design)")

    def typed(group: Sequence[str]) -> list[str]:
        return _present(group, pts)

    research_types = typed(
        _PT_META + _PT_SR + _PT_RCT + _PT_TRIAL + _PT_OBSERVATIONAL + _PT_CASE_REPORT
        + _PT_REVIEW + _PT_GUIDELINE
    )

    notice = typed(_PT_NOTICE)
    if notice and not research_types:
        reasons.append(f"publication type {_quote(notice)}: a notice about another article")
        return _assessment(EDITORIAL, "5", reasons)

    vet = typed(_PT_VETERINARY)
    if vet:
        reasons.append(f"publication type {_quote(vet)}: veterinary research")
        return _assessment(ANIMAL, "6", reasons)

    if _MESH_ANIMALS in heads and _MESH_HUMANS not in heads:
        reasons.append("MeSH 'Animals' without 'Humans': the research is in animals")
        if research_types:
            reasons.append(f"publication type {_quote(research_types)} describes animal work")
        return _assessment(ANIMAL, "6", reasons)

    # Systematic reviews and meta-analyses.
    meta, sr = typed(_PT_META), typed(_PT_SR)
    synthesis: str | None = None
    if meta or sr:
        reasons.append(f"publication type {_quote(meta + sr)}")
        synthesis = META_ANALYSIS if meta else SYSTEMATIC_REVIEW
    elif not typed(
        _PT_RCT + _PT_TRIAL + _PT_OBSERVATIONAL + _PT_CASE_REPORT + _PT_GUIDELINE
        + _PT_EDITORIAL + _PT_NOTICE
    ):
        # The cue stands in for a type not yet indexed; a comment or guideline about a
        # meta-analysis often carries its title, so those are left out.
        title_cue = _cue(_CUE_SR_TITLE, title_text)
        abstract_cue = None if title_cue else _cue(_CUE_SR_ABSTRACT, abstract_text)
        if title_cue or abstract_cue:
            where = "title" if title_cue else "abstract"
            reasons.append(f"{where} says '{title_cue or abstract_cue}' (publication type "
                           "not yet indexed as a systematic review)")
            is_meta = bool(_cue(_CUE_MA_TITLE, title_text if title_cue else abstract_text))
            synthesis = META_ANALYSIS if is_meta else SYSTEMATIC_REVIEW
    if synthesis is not None:
        return _assessment(synthesis, _synthesis_level(heads, both, reasons), reasons)

    rct = typed(_PT_RCT)
    if rct:
        reasons.append(f"publication type {_quote(rct)}")
        return _assessment(RCT, "1b", reasons)

    trial = typed(_PT_TRIAL)
    if trial:
        reasons.append(f"publication type {_quote(trial)}")
        return _trial(heads, title_text, abstract_text, reasons)

    observational = typed(_PT_OBSERVATIONAL)
    if observational:
        reasons.append(f"publication type {_quote(observational)}")
        found = _observational(heads, both, reasons)
        return found or _assessment(OBSERVATIONAL, "3", reasons)

    case_reports = typed(_PT_CASE_REPORT)
    if case_reports:
        reasons.append(f"publication type {_quote(case_reports)}")
        return _case_report(both, reasons)

    guideline = typed(_PT_GUIDELINE)
    if guideline:
        reasons.append(f"publication type {_quote(guideline)}: recommendations (expert "
                       "consensus); grade the studies it cites")
        return _assessment(GUIDELINE, "5", reasons)

    review = typed(_PT_REVIEW)
    if review:
        reasons.append(f"publication type {_quote(review)} without Systematic Review or "
                       "Meta-Analysis: a narrative review")
        return _assessment(NARRATIVE_REVIEW, "5", reasons)

    editorial = typed(_PT_EDITORIAL)
    if editorial:
        reasons.append(f"publication type {_quote(editorial)}: opinion, not a study")
        return _assessment(EDITORIAL, "5", reasons)

    protocol = typed(_PT_PROTOCOL)
    if protocol:
        reasons.append(f"publication type {_quote(protocol)}: a plan, reports no results")
        return _assessment(UNKNOWN, "unknown", reasons)

    weak = typed(_PT_WEAK)
    given = [pts[p] for p in pts if p not in ("multicenter study",)]
    reasons.append(
        f"publication types {_quote(given) or 'none'} give no design; "
        "looked at MeSH and title/abstract"
    )
    return _fallback(heads, title_text, abstract_text, weak, reasons)


def _synthesis_level(heads: Mapping[str, str], text: str, reasons: list[str]) -> str:
    """Level 1a when the review says it includes randomised trials, else 2a."""
    topic = _present(_MESH_SR_OF_RCTS, heads)
    if topic:
        reasons.append(f"MeSH {_quote(topic)} on a review: it includes randomised trials")
        return "1a"
    rct_cue = _cue(_CUE_SR_INCLUDES_RCT, text)
    if rct_cue:
        reasons.append(f"title/abstract mentions '{rct_cue}': includes randomised trials")
        return "1a"
    obs_cue = _cue(_CUE_SR_INCLUDES_OBS, text)
    if obs_cue:
        reasons.append(f"title/abstract mentions '{obs_cue}' and no randomised trials: a "
                       "synthesis of non-randomised studies")
    else:
        reasons.append("included designs not stated in title/abstract; not assumed to be "
                       "randomised trials")
    return "2a"


def _randomisation(heads: Mapping[str, str], title: str, abstract: str) -> str | None:
    """The signal that allocation was random, described for a reason, or None."""
    random_mesh = _present(_MESH_RANDOM, heads)
    if random_mesh:
        return f"MeSH {_quote(random_mesh)}"
    title_cue = _cue(_CUE_RANDOMISED_TITLE, title)
    if title_cue:
        return f"title says '{title_cue}'"
    abstract_cue = _cue(_CUE_RANDOMISED_ABSTRACT, abstract)
    if abstract_cue:
        return f"abstract says '{abstract_cue}'"
    return None


def _trial(
    heads: Mapping[str, str], title: str, abstract: str, reasons: list[str]
) -> DesignAssessment:
    randomised = _randomisation(heads, title, abstract)
    if randomised:
        reasons.append(f"{randomised}: allocation was random")
        return _assessment(RCT, "1b", reasons)
    reasons.append("no Randomized Controlled Trial type, 'Random Allocation' heading or "
                   "randomisation phrase: treated as non-randomised")
    return _assessment(NON_RANDOMISED_TRIAL, "2b", reasons)


def _observational(
    heads: Mapping[str, str], text: str, reasons: list[str]
) -> DesignAssessment | None:
    """Observational sub-design from MeSH and text cues, or None when nothing says."""
    series = _cue(_CUE_CASE_SERIES, text)
    if series:
        reasons.append(f"title/abstract says '{series}'")
        return _assessment(CASE_SERIES, "4", reasons)
    case_control = _present(_MESH_CASE_CONTROL, heads)
    case_control_cue = _cue(_CUE_CASE_CONTROL, text)
    if case_control or case_control_cue:
        found = f"MeSH {_quote(case_control)}" if case_control else f"text '{case_control_cue}'"
        reasons.append(f"{found}: case-control (cohort headings or words, if any, describe "
                       "where cases and controls were drawn from)")
        return _assessment(CASE_CONTROL, "3", reasons)
    cohort = _present(_MESH_COHORT_STRONG + _MESH_COHORT_TEMPORAL, heads)
    cohort_cue = _cue(_CUE_COHORT, text)
    if cohort or cohort_cue:
        found = f"MeSH {_quote(cohort)}" if cohort else f"text '{cohort_cue}'"
        reasons.append(f"{found}: a cohort followed over time")
        return _assessment(COHORT, "2b", reasons)
    cross = _present(_MESH_CROSS_SECTIONAL, heads)
    cross_cue = _cue(_CUE_CROSS_SECTIONAL, text)
    if cross or cross_cue:
        found = f"MeSH {_quote(cross)}" if cross else f"text '{cross_cue}'"
        reasons.append(f"{found}: cross-sectional (other observational)")
        return _assessment(OBSERVATIONAL, "3", reasons)
    retrospective = _present(_MESH_RETROSPECTIVE, heads)
    if retrospective:
        reasons.append(f"MeSH {_quote(retrospective)} alone: direction of data collection, "
                       "no comparison group stated (other observational)")
        return _assessment(OBSERVATIONAL, "3", reasons)
    prospective_cue = _cue(_CUE_PROSPECTIVE, text)
    if prospective_cue:
        reasons.append(f"text '{prospective_cue}': a group followed over time (cohort)")
        return _assessment(COHORT, "2b", reasons)
    return None


def _case_report(text: str, reasons: list[str]) -> DesignAssessment:
    series = _cue(_CUE_CASE_SERIES, text) or _cue(_CUE_SEVERAL_CASES, text)
    if series:
        reasons.append(f"title/abstract says '{series}': several cases (case series)")
        return _assessment(CASE_SERIES, "4", reasons)
    return _assessment(CASE_REPORT, "4", reasons)


def _fallback(
    heads: Mapping[str, str],
    title: str,
    abstract: str,
    weak: list[str],
    reasons: list[str],
) -> DesignAssessment:
    """Design from MeSH and title/abstract when the publication types do not give one."""
    both = f"{title} {abstract}"
    humans = _MESH_HUMANS in heads
    if not humans:
        animal = _cue(_CUE_ANIMAL_TITLE, title) or _cue(_CUE_ANIMAL_ABSTRACT, abstract)
        if animal:
            reasons.append(f"title/abstract names '{animal}' and MeSH has no 'Humans': "
                           "animal research")
            return _assessment(ANIMAL, "6", reasons)
    in_vitro = _present(_MESH_IN_VITRO, heads)
    in_vitro_cue = _cue(_CUE_IN_VITRO, title)
    # Cells cultured from a cohort's patients do not make the cohort a bench study.
    design_mesh = _present(
        _MESH_RANDOM + _MESH_TRIAL + _MESH_COHORT_STRONG + _MESH_COHORT_TEMPORAL
        + _MESH_RETROSPECTIVE + _MESH_CASE_CONTROL + _MESH_CROSS_SECTIONAL, heads
    )
    if (in_vitro or in_vitro_cue) and not design_mesh:
        found = f"MeSH {_quote(in_vitro)}" if in_vitro else f"title says '{in_vitro_cue}'"
        reasons.append(f"{found}: laboratory (in-vitro) research")
        return _assessment(IN_VITRO, "6", reasons)

    randomised = _randomisation(heads, title, abstract)
    if randomised:
        reasons.append(f"{randomised}: a randomised trial")
        return _assessment(RCT, "1b", reasons)
    trial_mesh = _present(_MESH_TRIAL, heads)
    trial_cue = _cue(_CUE_TRIAL, both)
    if trial_mesh or trial_cue:
        found = f"MeSH {_quote(trial_mesh)}" if trial_mesh else f"text '{trial_cue}'"
        reasons.append(f"{found}: an interventional trial, no randomisation signal "
                       "(non-randomised)")
        return _assessment(NON_RANDOMISED_TRIAL, "2b", reasons)

    observational = _observational(heads, both, reasons)
    if observational:
        return observational
    report = _cue(_CUE_CASE_REPORT, both)
    if report:
        reasons.append(f"title/abstract says '{report}'")
        return _case_report(both, reasons)
    if weak:
        reasons.append(f"only the weak publication type {_quote(weak)}: other observational")
        return _assessment(OBSERVATIONAL, "3", reasons)
    reasons.append("no design publication type, MeSH heading or title/abstract cue")
    return _assessment(UNKNOWN, "unknown", reasons)


# ---------------------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------------------

FLAG_CODES: tuple[str, ...] = (
    "retracted", "retraction_notice", "expression_of_concern", "erratum", "not_english",
    "preprint",
)
"""Every flag ``study_flags`` can raise, in the order it reports them."""


@dataclass(frozen=True, slots=True)
class Flag:
    """A warning about a study record.

    Attributes
    ----------
    code : str
        One of `FLAG_CODES`.
    reason : str
        What in the record raised it.
    """

    code: str
    reason: str


_RETRACTED_REFTYPES = ("retractionin", "retractedandrepublishedin")
_RETRACTION_NOTICE_REFTYPES = ("retractionof",)
_CONCERN_REFTYPES = ("expressionofconcernin",)
_ERRATUM_REFTYPES = ("erratumin", "correctedandrepublishedin")


def study_flags(
    *,
    publication_types: Sequence[str],
    comments_corrections: Sequence[tuple[str, str | None]] = (),
    languages: Sequence[str] = (),
    retracted: bool | None = None,
) -> tuple[Flag, ...]:
    """Warnings a reviewer must see next to a study.

    Parameters
    ----------
    publication_types : sequence of str
        PubMed PublicationType values.
    comments_corrections : sequence of (str, str or None)
        ``(RefType, PMID)`` pairs from CommentsCorrectionsList, e.g.
        ``("RetractionIn", "12345")``; the PMID may be None.
    languages : sequence of str
        PubMed Language codes (``"eng"``, ``"ger"``); empty means unknown (no flag).
    retracted : bool or None
        Retraction status from another source (e.g. the database). True raises the flag
        even when the record shows nothing; False does not hide a retraction the record
        shows (the reason then notes the disagreement); None means not known.

    Returns
    -------
    tuple of Flag
        In `FLAG_CODES` order, at most one per code.
    """
    pts = {p.strip().casefold(): p.strip() for p in publication_types}
    refs: dict[str, list[str]] = {}
    for ref_type, pmid in comments_corrections:
        refs.setdefault(ref_type.strip().casefold(), []).append(pmid or "")

    def linked(ref_types: Sequence[str]) -> list[str]:
        found: list[str] = []
        for ref_type in ref_types:
            for pmid in refs.get(ref_type, []):
                found.append(f"PMID {pmid}" if pmid else "a linked notice")
        return found

    flags: list[Flag] = []
    evidence: list[str] = []
    if "retracted publication" in pts:
        evidence.append("publication type 'Retracted Publication'")
    notices = linked(_RETRACTED_REFTYPES)
    if notices:
        evidence.append(f"retraction notice {', '.join(notices)} (RetractionIn)")
    if retracted is True:
        evidence.append("marked retracted in the database")
    if evidence:
        reason = "retracted: " + "; ".join(evidence)
        if retracted is False:
            reason += " (the database says not retracted; the record wins)"
        flags.append(Flag("retracted", reason))

    evidence = []
    if "retraction of publication" in pts:
        evidence.append("publication type 'Retraction of Publication'")
    retracts = linked(_RETRACTION_NOTICE_REFTYPES)
    if retracts:
        evidence.append(f"retracts {', '.join(retracts)} (RetractionOf)")
    if evidence:
        flags.append(Flag("retraction_notice", "a retraction notice, not a study: "
                          + "; ".join(evidence)))

    evidence = []
    if "expression of concern" in pts:
        evidence.append("this record is an expression of concern (publication type)")
    concerns = linked(_CONCERN_REFTYPES)
    if concerns:
        evidence.append(f"expression of concern {', '.join(concerns)} (ExpressionOfConcernIn)")
    if evidence:
        flags.append(Flag("expression_of_concern", "; ".join(evidence)))

    errata = linked(_ERRATUM_REFTYPES)
    if errata:
        flags.append(Flag("erratum", f"corrected: erratum {', '.join(errata)} (ErratumIn); "
                          "read the correction with the article"))

    langs = [lang.strip() for lang in languages if lang.strip()]
    if langs and "eng" not in {lang.casefold() for lang in langs}:
        flags.append(Flag("not_english", f"published in {', '.join(langs)}, not English"))

    if "preprint" in pts:
        flags.append(Flag("preprint", "publication type 'Preprint': not peer reviewed"))
    return tuple(flags)


# ---------------------------------------------------------------------------------------
# Indirectness
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Concept:
    """One entry of a lexicon: a condition, drug, route or population.

    Attributes
    ----------
    key : str
        Stable identifier.
    label : str
        Words shown to reviewers.
    patterns : tuple of str
        Regular expressions (case-insensitive unless they set ``(?-i:...)``) for the
        concept in free text.
    mesh : tuple of str
        MeSH descriptor names that mean the concept.
    parent : str or None
        Key of the broader concept (treatment-resistant depression → depression).
    """

    key: str
    label: str
    patterns: tuple[str, ...]
    mesh: tuple[str, ...] = ()
    parent: str | None = None


CONDITIONS: tuple[Concept, ...] = (
    Concept("depression", "depression", (
        r"(?<!respiratory )(?<!cns )(?<!respiratory-)\bdepress(?:ion|ive|ed)\b",
        r"(?-i:\bMDD\b)", r"\bunipolar\b", r"\bantidepressant\b",
    ), ("Depression", "Depressive Disorder", "Depressive Disorder, Major")),
    Concept("treatment_resistant_depression", "treatment-resistant depression", (
        r"\btreatment[- ](?:resistant|refractory)\s+(?:major\s+)?(?:depression|depressive)",
        r"\b(?:resistant|refractory)\s+(?:major\s+)?depression\b", r"(?-i:\bTRD\b)",
    ), ("Depressive Disorder, Treatment-Resistant",), "depression"),
    Concept("bipolar_depression", "bipolar depression", (
        r"\bbipolar(?:\s+(?:i{1,2}\s+)?(?:depression|disorder|depressive\s+episodes?))?\b",
    ), ("Bipolar Disorder",), "depression"),
    Concept("postpartum_depression", "postpartum depression", (
        r"\b(?:postpartum|postnatal|perinatal|peripartum)\s+depression\b",
    ), ("Depression, Postpartum",), "depression"),
    Concept("suicidal_ideation", "suicidal ideation", (
        r"\bsuicid(?:e|al|ality)\b",
    ), ("Suicidal Ideation", "Suicide", "Suicide, Attempted")),
    Concept("ptsd", "PTSD", (
        r"\bpost-?\s?traumatic\s+stress\b", r"(?-i:\bPTSD\b)",
    ), ("Stress Disorders, Post-Traumatic",)),
    Concept("anxiety", "anxiety", (
        r"\banxiety\b", r"\banxious\b", r"(?-i:\bGAD\b)", r"\bpanic\s+disorder\b",
        r"\bsocial\s+phobia\b",
    ), ("Anxiety", "Anxiety Disorders", "Panic Disorder", "Phobia, Social")),
    Concept("ocd", "OCD", (
        r"\bobsessive[- ]compulsive\b", r"(?-i:\bOCD\b)",
    ), ("Obsessive-Compulsive Disorder",)),
    Concept("pain", "pain", (
        r"\bpain(?:ful)?\b",
    ), ("Pain", "Back Pain", "Low Back Pain")),
    Concept("chronic_pain", "chronic pain", (
        r"\bchronic\s+(?:\w+\s+){0,2}pain\b", r"\bneuropathic\s+pain\b", r"\bfibromyalgia\b",
        r"\bcomplex\s+regional\s+pain\s+syndromes?\b", r"(?-i:\bCRPS\b)",
    ), ("Chronic Pain", "Neuralgia", "Fibromyalgia", "Complex Regional Pain Syndromes"),
        "pain"),
    Concept("acute_pain", "acute or postoperative pain", (
        r"\b(?:acute|postoperative|post-operative|perioperative)\s+pain\b",
    ), ("Acute Pain", "Pain, Postoperative"), "pain"),
    Concept("migraine", "migraine or headache", (
        r"\bmigraines?\b", r"\bheadaches?\b",
    ), ("Migraine Disorders", "Headache", "Headache Disorders")),
    Concept("eating_disorders", "eating disorders", (
        r"\beating\s+disorders?\b", r"\banorexia\s+nervosa\b", r"\bbulimi(?:a|c)\b",
        r"\bbinge[- ]eating\b",
    ), ("Feeding and Eating Disorders", "Anorexia Nervosa", "Bulimia Nervosa",
        "Binge-Eating Disorder", "Bulimia")),
    Concept("substance_use_disorder", "substance use disorder", (
        r"\bsubstance\s+(?:use\s+)?(?:disorders?|abuse|dependence)\b", r"\baddiction\b",
        r"\bdrug\s+(?:abuse|dependence)\b", r"(?-i:\bSUDs?\b)",
    ), ("Substance-Related Disorders",)),
    Concept("alcohol_use_disorder", "alcohol use disorder", (
        r"\balcohol\s+(?:use\s+disorders?|dependence|abuse|addiction)\b", r"\balcoholism\b",
        r"(?-i:\bAUD\b)",
    ), ("Alcoholism", "Alcohol-Related Disorders"), "substance_use_disorder"),
    Concept("opioid_use_disorder", "opioid use disorder", (
        r"\bopioid\s+(?:use\s+disorders?|dependence|addiction|withdrawal)\b", r"(?-i:\bOUD\b)",
    ), ("Opioid-Related Disorders",), "substance_use_disorder"),
    Concept("psychosis", "schizophrenia or psychosis", (
        r"\bschizophreni(?:a|c)\b", r"\bpsychos[ie]s\b",
    ), ("Schizophrenia", "Psychotic Disorders")),
    Concept("anaesthesia", "anaesthesia or sedation (surgical / procedural use)", (
        r"\bana?esthesia\b", r"\bprocedural\s+sedation\b",
    ), ("Anesthesia", "Anesthesia, General", "Conscious Sedation", "Deep Sedation")),
)
"""Conditions a claim or study can name; ``parent`` makes subgroups (TRD ⊂ depression)."""

DRUGS: tuple[Concept, ...] = (
    Concept("ketamine", "ketamine", (
        r"\bketamine\b", r"\bracemic\s+ketamine\b", r"\bketalar\b",
    ), ("Ketamine",)),
    Concept("esketamine", "esketamine", (
        r"\besketamine\b", r"\bS-ketamine\b", r"\(S\)-ketamine\b", r"\bspravato\b",
    )),
    Concept("arketamine", "arketamine", (
        r"\barketamine\b", r"\bR-ketamine\b", r"\(R\)-ketamine\b",
    )),
    Concept("ect", "electroconvulsive therapy", (
        r"\belectroconvulsive\b", r"(?-i:\bECT\b)",
    ), ("Electroconvulsive Therapy",)),
    Concept("tms", "transcranial magnetic stimulation", (
        r"\btranscranial\s+magnetic\s+stimulation\b", r"(?-i:\br?TMS\b)",
    ), ("Transcranial Magnetic Stimulation",)),
    Concept("psilocybin", "psilocybin", (r"\bpsilocybin\b",), ("Psilocybin",)),
    Concept("mdma", "MDMA", (
        r"(?-i:\bMDMA\b)", r"\bmethylenedioxymethamphetamine\b",
    ), ("N-Methyl-3,4-methylenedioxyamphetamine",)),
    Concept("nitrous_oxide", "nitrous oxide", (r"\bnitrous\s+oxide\b",), ("Nitrous Oxide",)),
)
"""Interventions: ketamine (racemic unless S- or R- is named) and its enantiomers kept
apart, and common alternatives."""

ROUTES: tuple[Concept, ...] = (
    Concept("intravenous", "intravenous infusion", (
        r"\bintravenous(?:ly)?\b", r"\binfus(?:ion|ions|ed)\b",
        r"(?-i:\bI\.?V\.?)(?=\s*(?:\)|ketamine|infusions?|line|drip|therapy|treatment|bolus))",
        r"\bi\.v\.",
    ), ("Infusions, Intravenous", "Injections, Intravenous", "Administration, Intravenous")),
    Concept("intranasal", "nasal spray", (
        r"\bintranasal(?:ly)?\b", r"\bnasal(?:\s+spray)?\b", r"\bspravato\b",
    ), ("Administration, Intranasal", "Nasal Sprays")),
    Concept("oral", "oral", (
        r"\boral(?:ly)?\s+(?:administered\s+)?(?:es|ar)?ketamine\b",
        r"\b(?:es|ar)?ketamine\s+(?:was\s+)?(?:given|administered|taken)\s+orally\b",
        r"\b(?:es|ar)?ketamine\s+(?:tablets?|capsules?)\b",
        r"\boral\s+administration\s+of\s+(?:es|ar)?ketamine\b",
    ), ("Administration, Oral",)),
    Concept("intramuscular", "intramuscular injection", (
        r"\bintramuscular(?:ly)?\b",
        r"(?-i:\bI\.?M\.?)(?=\s*(?:\)|ketamine|injections?))", r"\bi\.m\.",
    ), ("Injections, Intramuscular",)),
    Concept("sublingual", "sublingual / buccal lozenge", (
        r"\bsublingual(?:ly)?\b", r"\bbuccal\b", r"\blozenges?\b", r"\btroches?\b",
        r"\borally\s+disintegrating\b",
    ), ("Administration, Sublingual", "Administration, Buccal")),
    Concept("subcutaneous", "subcutaneous injection", (
        r"\bsubcutaneous(?:ly)?\b",
    ), ("Injections, Subcutaneous",)),
)
"""Routes and dosage forms; a claim about IV infusions is not supported by a nasal spray."""

POPULATIONS: tuple[Concept, ...] = (
    Concept("children", "children", (
        r"\bchild(?:ren)?\b", r"\bp(?:a)?ediatric\b", r"\bkids\b", r"\binfants?\b",
    ), ("Child", "Child, Preschool", "Infant")),
    Concept("adolescents", "adolescents", (
        r"\badolescen(?:ts?|ce)\b", r"\bteen(?:s|agers?)?\b", r"\byouths?\b",
    ), ("Adolescent",)),
    Concept("adults", "adults", (
        r"\badults?\b",
    ), ("Adult", "Young Adult", "Middle Aged")),
    Concept("older_adults", "older adults", (
        r"\belderly\b", r"\bolder\s+(?:adults?|people|patients)\b", r"\bgeriatric\b",
        r"\blate[- ]life\b",
    ), ("Aged", "Aged, 80 and over")),
)
"""Age groups; compared only when the claim names one."""

_HEALTHY = _rx(
    r"\bhealthy\s+(?:human\s+)?(?:volunteers?|subjects|participants|adults|men|women)\b"
)
_MESH_HEALTHY = "healthy volunteers"

INDIRECTNESS_DIMENSIONS = ("condition", "intervention", "route", "population")
"""The dimensions a `Mismatch` can name."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One way a study's question differs from the claim's.

    Attributes
    ----------
    dimension : str
        One of `INDIRECTNESS_DIMENSIONS`.
    claim_terms : tuple of str
        What the claim names (lexicon labels).
    study_terms : tuple of str
        What the study names instead (empty when it names nothing of that kind).
    """

    dimension: str
    claim_terms: tuple[str, ...]
    study_terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Indirectness:
    """Whether a study answers a different question from the claim, and why.

    Attributes
    ----------
    indirect : bool
        True when there is at least one mismatch.
    mismatches : tuple of Mismatch
        In `INDIRECTNESS_DIMENSIONS` order.
    reasons : tuple of str
        One or more lines per dimension, including the dimensions that were not assessed.
    """

    indirect: bool
    mismatches: tuple[Mismatch, ...]
    reasons: tuple[str, ...]


@lru_cache(maxsize=256)
def _patterns(concept: Concept) -> tuple[re.Pattern[str], ...]:
    return tuple(_rx(p) for p in concept.patterns)


def _in_text(lexicon: Sequence[Concept], text: str) -> set[str]:
    """Keys of the concepts named in ``text``.

    A match inside a longer match of another concept does not count, so "bipolar
    depression" names bipolar depression, not also depression, and "S-ketamine" names
    esketamine, not also ketamine.
    """
    hits: list[tuple[int, int, str]] = []
    for concept in lexicon:
        for pattern in _patterns(concept):
            hits.extend((m.start(), m.end(), concept.key) for m in pattern.finditer(text))
    found: set[str] = set()
    for start, end, key in hits:
        inside = any(
            other != key and s <= start and end <= e and (e - s) > (end - start)
            for s, e, other in hits
        )
        if not inside:
            found.add(key)
    return found


def _in_mesh(lexicon: Sequence[Concept], mesh: Sequence[str]) -> set[str]:
    heads = {_mesh_name(m) for m in mesh}
    return {c.key for c in lexicon if any(h.casefold() in heads for h in c.mesh)}


def _study_terms(sources: Sequence[tuple[str, set[str]]]) -> tuple[set[str], str]:
    """The first source (by precedence) that names any concept, and its name."""
    for name, keys in sources:
        if keys:
            return keys, name
    return set(), ""


def _labels(lexicon: Sequence[Concept], keys: Iterable[str]) -> tuple[str, ...]:
    wanted = set(keys)
    return tuple(c.label for c in lexicon if c.key in wanted)


_PARENTS = {c.key: c.parent for c in CONDITIONS}


def _ancestors(key: str) -> set[str]:
    found: set[str] = set()
    parent = _PARENTS.get(key)
    while parent is not None and parent not in found:
        found.add(parent)
        parent = _PARENTS.get(parent)
    return found


def assess_indirectness(
    claim_text: str,
    *,
    study_title: str,
    study_mesh: Sequence[str] = (),
    study_abstract: str = "",
) -> Indirectness:
    """Compare a claim's condition, intervention, route and population with a study's.

    Conditions: each condition the claim names must be one the study names, or a subgroup
    of it (a treatment-resistant-depression trial bears on a depression claim). A study
    only of the broader condition (depression, for a treatment-resistant-depression
    claim) is a population mismatch; a different condition, or none at all, is a
    condition mismatch. A claim that names no condition is not compared on condition, and
    the reasons say so. Interventions: the claim's and the study's drugs or procedures
    must share one (ketamine, esketamine and arketamine are different interventions); a
    study naming none is a mismatch. Routes and age groups: flagged only when both sides
    name some and none are shared; a study silent on them is not flagged. Studies only in
    animals, or only in healthy volunteers, are population mismatches.

    The study's terms come from the title and MeSH; the abstract is read only when those
    name nothing of a kind (abstracts mention comparators and comorbidities). Drugs come
    from the title, then the abstract, then MeSH, because the MeSH heading "Ketamine" is
    also used for esketamine.

    Parameters
    ----------
    claim_text : str
        The claim as written in the article.
    study_title : str
        The study's title; inline markup is ignored.
    study_mesh : sequence of str
        The study's MeSH descriptor names.
    study_abstract : str
        The study's abstract.

    Returns
    -------
    Indirectness
        The mismatches and one reason line per dimension.
    """
    claim = _clean(claim_text)
    title = _clean(study_title)
    abstract = _clean(study_abstract)
    mismatches: list[Mismatch] = []
    reasons: list[str] = []

    # Conditions.
    claim_conditions = _in_text(CONDITIONS, claim)
    title_mesh = _in_text(CONDITIONS, title) | _in_mesh(CONDITIONS, study_mesh)
    study_conditions, source = _study_terms(
        [("title/MeSH", title_mesh), ("abstract", _in_text(CONDITIONS, abstract))]
    )
    study_labels = _labels(CONDITIONS, study_conditions)
    if not claim_conditions:
        reasons.append("condition: the claim names no condition, so it is not compared")
    elif not study_conditions:
        claimed = _labels(CONDITIONS, claim_conditions)
        mismatches.append(Mismatch("condition", claimed, ()))
        reasons.append(f"condition: the claim is about {_quote(claimed)}; the study's title, "
                       "MeSH and abstract name no condition in the lexicon")
    else:
        different: list[str] = []
        broader: list[str] = []
        broader_found: set[str] = set()
        for key in sorted(claim_conditions):
            subgroups = {s for s in study_conditions if key in _ancestors(s)}
            if key in study_conditions or subgroups:
                continue
            wider = study_conditions & _ancestors(key)
            if wider:
                broader.append(key)
                broader_found |= wider
            else:
                different.append(key)
        if different:
            mismatches.append(Mismatch("condition", _labels(CONDITIONS, different),
                                       study_labels))
            reasons.append(f"condition: the claim is about {_quote(_labels(CONDITIONS, different))}"
                           f"; the study ({source}) is about {_quote(study_labels)}")
        if broader:
            mismatches.append(Mismatch("population", _labels(CONDITIONS, broader),
                                       _labels(CONDITIONS, broader_found)))
            reasons.append(f"population: the claim is about {_quote(_labels(CONDITIONS, broader))}"
                           f"; the study ({source}) is about the broader "
                           f"{_quote(_labels(CONDITIONS, broader_found))}")
        if not different and not broader:
            reasons.append(f"condition: the study ({source}) covers the claim's "
                           f"{_quote(_labels(CONDITIONS, claim_conditions))}")

    # Interventions.
    claim_drugs = _in_text(DRUGS, claim)
    study_drugs, source = _study_terms([
        ("title", _in_text(DRUGS, title)), ("abstract", _in_text(DRUGS, abstract)),
        ("MeSH", _in_mesh(DRUGS, study_mesh)),
    ])
    if not claim_drugs:
        reasons.append("intervention: the claim names no drug or procedure, so it is not "
                       "compared")
    elif not study_drugs:
        mismatches.append(Mismatch("intervention", _labels(DRUGS, claim_drugs), ()))
        reasons.append(f"intervention: the claim is about {_quote(_labels(DRUGS, claim_drugs))}"
                       "; the study's title, abstract and MeSH name no drug or procedure in "
                       "the lexicon")
    elif claim_drugs & study_drugs:
        reasons.append(f"intervention: the study ({source}) is about the claim's "
                       f"{_quote(_labels(DRUGS, claim_drugs & study_drugs))}")
    else:
        mismatches.append(Mismatch("intervention", _labels(DRUGS, claim_drugs),
                                   _labels(DRUGS, study_drugs)))
        reasons.append(f"intervention: the claim is about {_quote(_labels(DRUGS, claim_drugs))}"
                       f"; the study ({source}) is about {_quote(_labels(DRUGS, study_drugs))}")

    # Routes.
    claim_routes = _in_text(ROUTES, claim)
    study_routes, source = _study_terms([
        ("title/MeSH", _in_text(ROUTES, title) | _in_mesh(ROUTES, study_mesh)),
        ("abstract", _in_text(ROUTES, abstract)),
    ])
    if not claim_routes:
        reasons.append("route: the claim names no route or form, so it is not compared")
    elif not study_routes:
        reasons.append("route: the study names no route or form, so it is not compared")
    elif claim_routes & study_routes:
        reasons.append(f"route: the study ({source}) uses the claim's "
                       f"{_quote(_labels(ROUTES, claim_routes & study_routes))}")
    else:
        mismatches.append(Mismatch("route", _labels(ROUTES, claim_routes),
                                   _labels(ROUTES, study_routes)))
        reasons.append(f"route: the claim is about {_quote(_labels(ROUTES, claim_routes))}; "
                       f"the study ({source}) uses {_quote(_labels(ROUTES, study_routes))}")

    # Population: species, healthy volunteers, age groups.
    heads = {_mesh_name(m) for m in study_mesh}
    animal_cue = _cue(_CUE_ANIMAL_TITLE, title)
    in_animals = (_MESH_ANIMALS in heads or bool(animal_cue)) and _MESH_HUMANS not in heads
    if in_animals:
        why = "MeSH 'Animals' without 'Humans'" if _MESH_ANIMALS in heads else (
            f"title names '{animal_cue}'")
        mismatches.append(Mismatch("population", ("people",), ("animals",)))
        reasons.append(f"population: the study is in animals ({why}); the claim is about "
                       "people")
    healthy_cue = _cue(_HEALTHY, title)
    healthy = f"title says '{healthy_cue}'" if healthy_cue else (
        "MeSH 'Healthy Volunteers'" if _MESH_HEALTHY in heads else None)
    if healthy and claim_conditions and not study_conditions:
        mismatches.append(Mismatch("population", _labels(CONDITIONS, claim_conditions),
                                   ("healthy volunteers",)))
        reasons.append(f"population: the study is in healthy volunteers ({healthy}); the "
                       f"claim is about {_quote(_labels(CONDITIONS, claim_conditions))}")
    claim_ages = _in_text(POPULATIONS, claim)
    study_ages, source = _study_terms([
        ("title/MeSH", _in_text(POPULATIONS, title) | _in_mesh(POPULATIONS, study_mesh)),
        ("abstract", _in_text(POPULATIONS, abstract)),
    ])
    if not claim_ages:
        reasons.append("population: the claim names no age group, so ages are not compared")
    elif not study_ages:
        reasons.append("population: the study names no age group, so ages are not compared")
    elif claim_ages & study_ages:
        reasons.append(f"population: the study ({source}) includes the claim's "
                       f"{_quote(_labels(POPULATIONS, claim_ages & study_ages))}")
    else:
        mismatches.append(Mismatch("population", _labels(POPULATIONS, claim_ages),
                                   _labels(POPULATIONS, study_ages)))
        reasons.append(f"population: the claim is about "
                       f"{_quote(_labels(POPULATIONS, claim_ages))}; the study ({source}) "
                       f"is in {_quote(_labels(POPULATIONS, study_ages))}")

    order = {d: i for i, d in enumerate(INDIRECTNESS_DIMENSIONS)}
    mismatches.sort(key=lambda m: order[m.dimension])
    return Indirectness(bool(mismatches), tuple(mismatches), tuple(reasons))


# ---------------------------------------------------------------------------------------
# GRADE certainty suggestion
# ---------------------------------------------------------------------------------------

GRADE_LEVELS: tuple[str, ...] = ("very_low", "low", "moderate", "high")
"""GRADE certainty levels, weakest first: ``GRADE_LEVELS.index(a) < GRADE_LEVELS.index(b)``
means ``a`` is less certain than ``b``."""

GRADE_DOMAINS: tuple[str, ...] = (
    "risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias",
)
"""The five GRADE domains a certainty can be rated down on."""

STANCES: tuple[str, ...] = ("supports", "partially_supports", "contradicts",
                            "does_not_address")
"""A reviewer's reading of what a study says about a claim (None: not yet assessed)."""

_SUPPORTING = ("supports", "partially_supports")
_RANDOMISED_START = (RCT,)
_SYNTHESES = (META_ANALYSIS, SYSTEMATIC_REVIEW)
_NON_RANDOMISED = (NON_RANDOMISED_TRIAL, COHORT, CASE_CONTROL, OBSERVATIONAL)
_NON_HUMAN = (ANIMAL, IN_VITRO)


@dataclass(frozen=True, slots=True)
class LinkEvidence:
    """What ``suggest_certainty`` needs to know about one claim ↔ study link.

    Attributes
    ----------
    design : str
        One of `DESIGNS` (from `classify_design`).
    rank : int
        The design's rank (from `classify_design`); tells a systematic review of
        randomised trials (rank >= `RANK_RANDOMISED_SYNTHESIS`) from others.
    relevant : bool
        The reviewer (or matcher) judged the study relevant to the claim.
    stance : str or None
        One of `STANCES`, or None when not yet assessed.
    indirect : bool
        The study answers a different question (see `assess_indirectness`).
    retracted : bool
        The study is retracted.
    flags : sequence of str
        `FLAG_CODES` raised for the study ("retracted" also excludes it;
        "expression_of_concern" counts towards risk of bias).
    label : str
        How reasons name the study, e.g. ``"PMID 12345"``; optional.
    """

    design: str
    rank: int
    relevant: bool
    stance: str | None
    indirect: bool
    retracted: bool
    flags: Sequence[str] = ()
    label: str = ""


@dataclass(frozen=True, slots=True)
class CertaintySuggestion:
    """A suggested GRADE certainty for a claim, with the steps that led to it.

    Attributes
    ----------
    level : str
        Suggested certainty, one of `GRADE_LEVELS`.
    start_level : str
        Certainty before downgrades, set by the best relevant, non-retracted evidence.
    downgrades : tuple of (str, str)
        ``(domain, reason)`` pairs, domain one of `GRADE_DOMAINS`; one level each.
    reasons : tuple of str
        Every step, including what was excluded and what was left to the reviewer.
    """

    level: str
    start_level: str
    downgrades: tuple[tuple[str, str], ...]
    reasons: tuple[str, ...]


def _start(item: LinkEvidence) -> tuple[str, str]:
    """GRADE starting certainty for one study's design, and why."""
    if item.design in _RANDOMISED_START:
        return "high", "randomised controlled trial"
    if item.design in _SYNTHESES:
        if item.rank >= RANK_RANDOMISED_SYNTHESIS:
            return "high", "systematic review / meta-analysis of randomised trials"
        return "low", "systematic review / meta-analysis of non-randomised or unstated designs"
    if item.design in _NON_RANDOMISED:
        return "low", f"non-randomised study ({item.design.replace('_', ' ')})"
    if item.design in _NON_HUMAN:
        return "very_low", "animal or in-vitro research"
    if item.design == UNKNOWN:
        return "very_low", "design unknown"
    return "very_low", f"{item.design.replace('_', ' ')} (case report/series or expert opinion)"


def _names(items: Sequence[LinkEvidence]) -> str:
    labels = [i.label for i in items if i.label]
    count = f"{len(items)} stud{'y' if len(items) == 1 else 'ies'}"
    return f"{count} ({', '.join(labels)})" if labels else count


def _direction(stance: str | None) -> str | None:
    """Whether a stance is for or against the claim; None when not assessed."""
    if stance in _SUPPORTING:
        return "for"
    return "against" if stance == "contradicts" else None


def _lower(level: str, steps: int) -> str:
    return GRADE_LEVELS[max(0, GRADE_LEVELS.index(level) - steps)]


def suggest_certainty(evidence: Sequence[LinkEvidence]) -> CertaintySuggestion:
    """Suggest a GRADE certainty for a claim from its linked evidence.

    Relevant studies that are not retracted and whose stance is not "does_not_address"
    form the body of evidence (retracted ones are excluded and named). The best of them
    set the starting level: high for randomised trials and systematic reviews /
    meta-analyses of randomised trials, low for non-randomised studies, very low for case
    series, case reports, expert opinion, animal and in-vitro work or an unknown design.
    Then one level down for each of: indirectness (every best study is indirect),
    inconsistency (the body both supports and contradicts the claim), risk of bias (every
    best study has an expression of concern). Imprecision and publication bias are left
    to the reviewer. The level never goes below very low.

    Parameters
    ----------
    evidence : sequence of LinkEvidence
        Every link of the claim, relevant or not.

    Returns
    -------
    CertaintySuggestion
        The suggested level, the starting level, the downgrades and the reasons.

    Raises
    ------
    ValueError
        If a link has a design outside `DESIGNS` or a stance outside `STANCES`.
    """
    for item in evidence:
        if item.design not in DESIGNS:
            raise ValueError(f"unknown design {item.design!r}; expected one of {DESIGNS}")
        if item.stance is not None and item.stance not in STANCES:
            raise ValueError(f"unknown stance {item.stance!r}; expected one of {STANCES}")

    reasons: list[str] = []
    irrelevant: list[LinkEvidence] = []
    retracted: list[LinkEvidence] = []
    silent: list[LinkEvidence] = []
    body: list[LinkEvidence] = []
    for item in evidence:
        if not item.relevant:
            irrelevant.append(item)
        elif item.retracted or "retracted" in item.flags:
            retracted.append(item)
        elif item.stance == "does_not_address":
            silent.append(item)
        else:
            body.append(item)
    if irrelevant:
        reasons.append(f"{_names(irrelevant)} not relevant, not considered")
    if retracted:
        reasons.append(f"excluded {_names(retracted)}: retracted")
    if silent:
        reasons.append(f"excluded {_names(silent)}: judged not to address the claim")

    if not body:
        if retracted:
            reasons.append("no relevant evidence linked apart from retracted studies")
        else:
            reasons.append("no relevant evidence linked")
        return CertaintySuggestion("very_low", "very_low", (), tuple(reasons))

    starts = [(_start(i), i) for i in body]
    start_level = max((s[0] for s, _ in starts), key=GRADE_LEVELS.index)
    best = [i for (level, _), i in starts if level == start_level]
    why = sorted({w for (level, w), _ in starts if level == start_level})
    reasons.append(f"starts {start_level}: best evidence is {_names(best)}: {'; '.join(why)}")
    others = len(body) - len(best)
    if others:
        reasons.append(f"{others} weaker stud{'y' if others == 1 else 'ies'} considered for "
                       "consistency only")
    if all(i.design in _NON_HUMAN for i in body):
        reasons.append("only animal or in-vitro evidence: it does not show the effect in "
                       "people")
    unassessed = [i for i in body if i.stance is None]
    if unassessed:
        reasons.append(f"stance not yet assessed for {_names(unassessed)}")

    downgrades: list[tuple[str, str]] = []
    concern = [i for i in best if "expression_of_concern" in i.flags]
    if concern and len(concern) == len(best):
        downgrades.append(("risk_of_bias", f"every best study has an expression of concern: "
                                           f"{_names(concern)}"))
    # Inconsistency is judged within the body that sets the level: a case report
    # disagreeing with randomised trials is noted, not rated down.
    supporting = [i for i in best if i.stance in _SUPPORTING]
    contradicting = [i for i in best if i.stance == "contradicts"]
    if supporting and contradicting:
        downgrades.append(("inconsistency", f"{_names(supporting)} support the claim and "
                                            f"{_names(contradicting)} contradict it"))
    best_directions = {_direction(i.stance) for i in best} - {None}
    weaker_directions = {_direction(i.stance) for i in body if i not in best} - {None}
    if best_directions and weaker_directions - best_directions:
        reasons.append("weaker studies disagree with the best evidence (noted, not rated "
                       "down)")
    if all(i.indirect for i in best):
        downgrades.append(("indirectness", f"every best study is indirect: {_names(best)}"))

    level = _lower(start_level, len(downgrades))
    for domain, reason in downgrades:
        reasons.append(f"rated down one level for {domain.replace('_', ' ')}: {reason}")
    if GRADE_LEVELS.index(start_level) < len(downgrades):
        reasons.append("already at very low: further downgrades cannot lower it")
    reasons.append("imprecision and publication bias not assessed automatically (need effect "
                   "sizes and sample sizes): the reviewer judges them")
    if all(i.stance == "contradicts" for i in best):
        reasons.append("the best evidence contradicts the claim: certainty is about the "
                       "evidence, not support for the claim")
    reasons.append(f"suggested certainty: {level}")
    return CertaintySuggestion(level, start_level, tuple(downgrades), tuple(reasons))


def certainty_departs(suggested: str, chosen: str) -> bool:
    """Whether a reviewer's certainty differs from the suggestion (a rationale is needed).

    Parameters
    ----------
    suggested, chosen : str
        Levels from `GRADE_LEVELS`.

    Returns
    -------
    bool
        True when they differ.

    Raises
    ------
    ValueError
        If either is not one of `GRADE_LEVELS`.
    """
    for value in (suggested, chosen):
        if value not in GRADE_LEVELS:
            raise ValueError(f"unknown certainty {value!r}; expected one of {GRADE_LEVELS}")
    return suggested != chosen


def named_concepts(text: str) -> dict[str, tuple[str, ...]]:
    """The conditions, drugs, routes and populations a text names, by lexicon label.

    Parameters
    ----------
    text : str
        Free text (a claim, an article, a title).

    Returns
    -------
    dict
        ``{"condition": labels, "drug": labels, "route": labels, "population": labels}``,
        each in lexicon order.
    """
    lexicons = {"condition": CONDITIONS, "drug": DRUGS, "route": ROUTES,
                "population": POPULATIONS}
    return {name: _labels(lex, _in_text(lex, text)) for name, lex in lexicons.items()}
