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
2b    cohort study; controlled non-randomised trial                               60-65
3     case-control study; other observational study (cross-sectional, registry,   45-50
      evaluation or validation study)
4     case series (including single-arm, uncontrolled before-after and pilot      35-40
      trials without a comparison group); case report
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

from evidence import vocabulary
from evidence.vocabulary import (
    ANIMAL,
    CASE_CONTROL,
    CASE_REPORT,
    CASE_SERIES,
    CERTAINTY,
    COHORT,
    DESIGNS,
    EDITORIAL,
    EVIDENCE_LEVELS,
    GUIDELINE,
    IN_VITRO,
    INDIRECTNESS_DIMENSIONS,
    META_ANALYSIS,
    NARRATIVE_REVIEW,
    NON_RANDOMISED_TRIAL,
    OBSERVATIONAL,
    RCT,
    STANCES,
    STUDY_FLAGS,
    SYSTEMATIC_REVIEW,
    UNKNOWN,
)
from evidence.vocabulary import GRADE_DOMAINS as GRADE_DOMAINS  # re-exported for callers

# ---------------------------------------------------------------------------------------
# Designs and levels
# ---------------------------------------------------------------------------------------

# Designs and levels are vocabulary (defined once in evidence.vocabulary); the ranks and
# the rules that assign them are here.
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
# A trial without a comparison group is a case series (CEBM level 4), whatever its title
# calls it. These phrases say so outright, and outweigh a "control" word elsewhere ("without
# a control group").
_CUE_UNCONTROLLED = _rx(
    r"\bsingle[- ](?:arm|group)\b|\bnon-?\s?controlled\b|\buncontrolled\b"
    r"|\bwithout\s+(?:a\s+)?(?:control|comparison|comparator)\b"
    r"|\bno\s+(?:control|comparison|comparator)\s+(?:group|arm|condition)\b"
    r"|\bbefore[- ]and[- ]after\b"
)
# These suggest it but are often said of controlled trials too ("open-label, versus ECT").
_CUE_UNCONTROLLED_WEAK = _rx(
    r"\bpre-?\s?(?:and\s+)?post-?(?:\s?(?:test|treatment|intervention))?\b|\bpre-?\s?post\b"
    r"|\bopen[- ]label\b|\bpilot\b"
)
# A comparison group: placebo, sham, a control or comparator arm, another treatment.
_CUE_CONTROLLED = _rx(
    r"\bplacebo\b|\bsham\b|\bcontrol(?:led)?\s+(?:group|arm|condition|trial|subjects|"
    r"participants|patients|cohort)s?\b|\bcontrols\b|\bcomparator\b|\bwait-?\s?list\b"
    r"|\busual\s+care\b|\btreatment\s+as\s+usual\b|\b(?:two|three|four|2|3|4)\s+"
    r"(?:parallel\s+)?(?:groups|arms)\b"
    r"|\b(?:versus|vs\.?)\s+(?!baseline|pre|post|after|before)\w+"
    r"|\bcompared\s+(?:with|to)\s+(?!(?:the\s+)?(?:baseline|pre-?\w*|before|their\s+"
    r"baseline))\w+|\bmatched\b|\bcrossover\b|\bcross-over\b"
)
# N patients who all received the treatment: a treated group, no comparison stated.
_CUE_TREATED_GROUP = _rx(
    r"\b(?:\d+|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty"
    r"(?:[- ]\w+)?|thirty(?:[- ]\w+)?)\s+(?:[\w-]+\s+){0,5}?(?:patients|participants|"
    r"subjects|men|women|adults|individuals|adolescents|veterans)\b[^.]{0,80}?\b(?:received|"
    r"were\s+(?:treated|given|administered|infused)|underwent)\b"
)
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


# Strings one of which every match of a cue pattern contains (case-folded): checking them
# with ``in`` first skips most regex scans of long abstracts (classification is on the
# bulk-load path, and a case-insensitive pattern that starts with ``\b`` is tried at every
# position). Cues are read from whitespace-collapsed text (``_clean``), so a phrase with
# one space stands for the pattern's ``\s+``. ``tests/test_grading.py`` checks, phrase by
# phrase and over the SciFact abstracts, that the prefilter never hides a match.
_PREFILTER: dict[re.Pattern[str], tuple[str, ...]] = {
    _CUE_SR_TITLE: ("systemat", "meta"),
    _CUE_MA_TITLE: ("meta",),
    _CUE_SR_ABSTRACT: ("systemat", "meta"),
    _CUE_RANDOMISED_TITLE: ("random",),
    _CUE_RANDOMISED_ABSTRACT: ("random",),
    _CUE_TRIAL: ("placebo", "open-label", "open label", "single-arm", "single arm", "trial"),
    _CUE_SR_INCLUDES_RCT: ("random", "rct"),
    _CUE_SR_INCLUDES_OBS: ("cohort", "observational", "control", "sectional", "random"),
    _CUE_CASE_SERIES: ("case series", "chart review"),
    _CUE_UNCONTROLLED: ("single-arm", "single arm", "single-group", "single group",
                        "controlled", "without", "no control", "no compar", "before"),
    _CUE_UNCONTROLLED_WEAK: ("prepost", "pre-post", "pre post", "pre- post", "and post",
                             "open-label", "open label", "pilot"),
    _CUE_CONTROLLED: ("placebo", "sham", "control", "comparator", "wait", "usual", "groups",
                      "arms", "vs", "versus", "compared", "matched", "cross"),
    _CUE_TREATED_GROUP: ("received", "treated", "given", "administered", "infused",
                         "underwent"),
    _CUE_CASE_REPORT: ("case",),
    _CUE_SEVERAL_CASES: ("patients", "cases"),
    _CUE_CASE_CONTROL: ("case-control", "case control"),
    _CUE_COHORT: ("cohort",),
    _CUE_PROSPECTIVE: ("prospective", "longitudinal"),
    _CUE_CROSS_SECTIONAL: ("sectional",),
    _CUE_ANIMAL_ABSTRACT: ("sprague", "wistar", "c57bl", "balb", "mice"),
    _CUE_IN_VITRO: ("vitro", "cell", "cultured", "organoid"),
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
        return _trial(heads, title_text, abstract_text, reasons,
                      controlled_type="controlled clinical trial" in pts)

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
    heads: Mapping[str, str], title: str, abstract: str, reasons: list[str],
    *, controlled_type: bool = False,
) -> DesignAssessment:
    randomised = _randomisation(heads, title, abstract)
    if randomised:
        reasons.append(f"{randomised}: allocation was random")
        return _assessment(RCT, "1b", reasons)
    reasons.append("no Randomized Controlled Trial type, 'Random Allocation' heading or "
                   "randomisation phrase: not randomised")
    return _controlled_or_series(title, abstract, reasons, controlled_type=controlled_type)


def _controlled_or_series(
    title: str, abstract: str, reasons: list[str], *, controlled_type: bool = False,
    controlled_mesh: Sequence[str] = (),
) -> DesignAssessment:
    """A non-randomised trial is 2b only with a comparison group; else a case series."""
    both = f"{title} {abstract}"
    control = _cue(_CUE_CONTROLLED, both)
    single = _cue(_CUE_UNCONTROLLED, both)
    if single and not controlled_type:
        reasons.append(f"text '{single}': a single-arm / uncontrolled study is a case series "
                       "(CEBM level 4)")
        return _assessment(CASE_SERIES, "4", reasons)
    if controlled_type or controlled_mesh or control:
        found = ("publication type 'Controlled Clinical Trial'" if controlled_type
                 else f"MeSH {_quote(controlled_mesh)}" if controlled_mesh
                 else f"text '{control}'")
        reasons.append(f"{found}: a comparison group (controlled non-randomised trial)")
        return _assessment(NON_RANDOMISED_TRIAL, "2b", reasons)
    uncontrolled = _cue(_CUE_UNCONTROLLED_WEAK, both)
    if uncontrolled:
        reasons.append(f"text '{uncontrolled}' and no control or comparison group: a "
                       "single-arm / uncontrolled study is a case series (CEBM level 4)")
    else:
        reasons.append("no control or comparison group stated: an uncontrolled trial is a "
                       "case series (CEBM level 4)")
    return _assessment(CASE_SERIES, "4", reasons)


def _observational(
    heads: Mapping[str, str], text: str, reasons: list[str]
) -> DesignAssessment | None:
    """Observational sub-design from MeSH and text cues, or None when nothing says."""
    series = _cue(_CUE_CASE_SERIES, text)
    if series:
        reasons.append(f"title/abstract says '{series}'")
        return _assessment(CASE_SERIES, "4", reasons)
    single = _cue(_CUE_UNCONTROLLED, text)
    weak = _cue(_CUE_UNCONTROLLED_WEAK, text)
    if single or (weak and not _cue(_CUE_CONTROLLED, text)):
        single = single or weak
        reasons.append(f"title/abstract says '{single}' and names no comparison group: a "
                       "case series (CEBM level 4)")
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
    # MEDLINE indexers tag every study of people or animals with 'Humans' or 'Animals';
    # an indexed record with neither is about molecules, materials or methods.
    if heads and not humans and _MESH_ANIMALS not in heads and not design_mesh:
        reasons.append("MeSH indexed with neither 'Humans' nor 'Animals': laboratory "
                       "(bench) research")
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
        # Blinding and cross-over presuppose a comparison (placebo or another arm).
        return _controlled_or_series(title, abstract, reasons, controlled_mesh=trial_mesh)

    observational = _observational(heads, both, reasons)
    if observational:
        return observational
    report = _cue(_CUE_CASE_REPORT, both)
    if report:
        reasons.append(f"title/abstract says '{report}'")
        return _case_report(both, reasons)
    treated = _cue(_CUE_TREATED_GROUP, abstract)
    if treated and not _cue(_CUE_CONTROLLED, both):
        reasons.append(f"abstract says '{treated}' and names no comparison group: a "
                       "treated group without control is a case series (CEBM level 4)")
        return _assessment(CASE_SERIES, "4", reasons)
    if weak:
        reasons.append(f"only the weak publication type {_quote(weak)}: other observational")
        return _assessment(OBSERVATIONAL, "3", reasons)
    reasons.append("no design publication type, MeSH heading or title/abstract cue")
    return _assessment(UNKNOWN, "unknown", reasons)


# ---------------------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------------------

FLAG_CODES: tuple[str, ...] = tuple(STUDY_FLAGS)
"""Every flag ``study_flags`` can raise, in the order it reports them (the vocabulary's)."""


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
_ERRATUM_REFTYPES = ("erratumin",)
_REPUBLISHED_REFTYPES = ("correctedandrepublishedin",)


def study_flags(
    *,
    publication_types: Sequence[str],
    comments_corrections: Sequence[tuple[str, str | None]] = (),
    languages: Sequence[str] = (),
    retracted: bool | None = None,
    deleted: bool = False,
) -> tuple[Flag, ...]:
    """Warnings a reviewer must see next to a study; the one implementation of flags.

    What this returns is what is stored on the study and shown in the app and exports.

    Parameters
    ----------
    publication_types : sequence of str
        PubMed PublicationType values.
    comments_corrections : sequence of (str, str or None)
        ``(RefType, PMID)`` pairs from CommentsCorrectionsList, e.g.
        ``("RetractionIn", "12345")``; the PMID may be None. RefTypes are compared
        case-insensitively (PubMed writes "CorrectedandRepublishedIn").
    languages : sequence of str
        PubMed Language codes (``"eng"``, ``"ger"``); empty means unknown (no flag).
    retracted : bool or None
        Retraction status from another source (e.g. the database). True raises the flag
        even when the record shows nothing; False does not hide a retraction the record
        shows (the reason then notes the disagreement); None means not known.
    deleted : bool
        PubMed deleted the record (a ``DeleteCitation`` in an update file).

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

    found: dict[str, str] = {}
    evidence: list[str] = []
    if "retracted publication" in pts:
        evidence.append("publication type 'Retracted Publication'")
    notices = linked(_RETRACTED_REFTYPES[:1])
    if notices:
        evidence.append(f"retraction notice {', '.join(notices)} (RetractionIn)")
    republished = linked(_RETRACTED_REFTYPES[1:])
    if republished:
        evidence.append(f"retracted and republished as {', '.join(republished)} "
                        "(RetractedandRepublishedIn)")
    if retracted is True:
        evidence.append("marked retracted in the database")
    if evidence:
        reason = "retracted: " + "; ".join(evidence)
        if retracted is False:
            reason += " (the database says not retracted; the record wins)"
        found["retracted"] = reason

    evidence = []
    if "retraction of publication" in pts:
        evidence.append("publication type 'Retraction of Publication'")
    retracts = linked(_RETRACTION_NOTICE_REFTYPES)
    if retracts:
        evidence.append(f"retracts {', '.join(retracts)} (RetractionOf)")
    if evidence:
        found["retraction_notice"] = "a retraction notice, not a study: " + "; ".join(evidence)

    # A record that *is* an expression of concern is a notice about another article (its
    # design says so); the flag is for the study the concern is about.
    concerns = linked(_CONCERN_REFTYPES)
    if concerns:
        found["expression_of_concern"] = (f"expression of concern {', '.join(concerns)} "
                                          "(ExpressionOfConcernIn)")

    corrected = linked(_REPUBLISHED_REFTYPES)
    if corrected:
        found["corrected_and_republished"] = (
            f"corrected and republished as {', '.join(corrected)} "
            "(CorrectedandRepublishedIn): read the republished version")

    errata = linked(_ERRATUM_REFTYPES)
    if errata:
        found["erratum"] = (f"corrected: erratum {', '.join(errata)} (ErratumIn); read the "
                            "correction with the article")

    if deleted:
        found["deleted"] = "PubMed deleted this record (DeleteCitation)"

    langs = [lang.strip() for lang in languages if lang.strip()]
    if langs and "eng" not in {lang.casefold() for lang in langs}:
        found["not_english"] = f"published in {', '.join(langs)}, not English"

    if "preprint" in pts:
        found["preprint"] = "publication type 'Preprint': not peer reviewed"
    return tuple(Flag(code, found[code]) for code in FLAG_CODES if code in found)


def flag_codes(flags: Iterable[Flag] | Iterable[Mapping[str, str]]) -> list[str]:
    """The codes of stored or computed flags, in `FLAG_CODES` order."""
    codes = {f.code if isinstance(f, Flag) else str(f.get("code")) for f in flags}
    return [c for c in FLAG_CODES if c in codes]


# ---------------------------------------------------------------------------------------
# Indirectness and fit
# ---------------------------------------------------------------------------------------

_HEALTHY = _rx(
    r"\bhealthy\s+(?:human\s+)?(?:volunteers?|subjects|participants|adults|men|women)\b"
)
_MESH_HEALTHY = "healthy volunteers"


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One way a study's question differs from the claim's.

    Attributes
    ----------
    dimension : str
        One of `INDIRECTNESS_DIMENSIONS`.
    claim_terms : tuple of str
        What the claim names (vocabulary labels).
    study_terms : tuple of str
        What the study names instead (empty when it names nothing of that kind).
    blocking : bool
        The study answers a different question altogether (another condition, another
        substance, or none named), so it does not fit the claim; a non-blocking mismatch
        makes fitting evidence indirect.
    """

    dimension: str
    claim_terms: tuple[str, ...]
    study_terms: tuple[str, ...]
    blocking: bool = False


@dataclass(frozen=True, slots=True)
class Indirectness:
    """How a study's question differs from the claim's, and why.

    Attributes
    ----------
    indirect : bool
        True when the study fits the claim but differs from it (a non-blocking mismatch).
    mismatches : tuple of Mismatch
        In `INDIRECTNESS_DIMENSIONS` order.
    reasons : tuple of str
        One or more lines per dimension, including the dimensions that were not compared.
    shared : tuple of str
        The dimensions ("condition", "intervention") on which the study shares the
        claim's term (or a broader, narrower or other form of it).
    """

    indirect: bool
    mismatches: tuple[Mismatch, ...]
    reasons: tuple[str, ...]
    shared: tuple[str, ...] = ()

    @property
    def on_topic(self) -> bool:
        """True when no mismatch is blocking: the study shares the claim's condition and
        intervention (or the claim names none of that kind)."""
        return not any(m.blocking for m in self.mismatches)


@dataclass(frozen=True, slots=True)
class ClaimContext:
    """What a claim's article is about, to read a claim that names no condition or drug.

    Attributes
    ----------
    conditions : frozenset of str
        Every condition key the article names.
    interventions : frozenset of str
        The article's main interventions: those named at least half as often as the most
        named one, comparators (SSRIs, "antidepressants") aside unless nothing else is
        named (a ketamine post that mentions SSRIs is about ketamine).
    routes : frozenset of str
        The article's one main route (named at least twice as often as any other), or
        none when it uses several alike.
    """

    conditions: frozenset[str] = frozenset()
    interventions: frozenset[str] = frozenset()
    routes: frozenset[str] = frozenset()


def _main(counts: Mapping[str, int]) -> frozenset[str]:
    """The keys named at least half as often as the most named one."""
    top = max(counts.values(), default=0)
    return frozenset(k for k, n in counts.items() if n * 2 >= top)


def article_context(text: str) -> ClaimContext:
    """The conditions and main interventions an article is about.

    Parameters
    ----------
    text : str
        The article's text.

    Returns
    -------
    ClaimContext
    """
    counts = vocabulary.occurrences("intervention", text)
    subjects = {k: n for k, n in counts.items()
                if not getattr(vocabulary.get("intervention", k), "comparator", "")}
    routes = _main(vocabulary.occurrences("route", text))
    # An article using several routes alike assumes none of them.
    return ClaimContext(frozenset(vocabulary.find("condition", text)), _main(subjects or counts),
                        routes if len(routes) == 1 else frozenset())


def _labels(kind: str, keys: Iterable[str]) -> tuple[str, ...]:
    return vocabulary.labels(kind, keys)


def _study_terms(sources: Sequence[tuple[str, set[str]]]) -> tuple[set[str], str]:
    """The first source (by precedence) that names any concept, and its name."""
    for name, keys in sources:
        if keys:
            return keys, name
    return set(), ""


def _compare_conditions(
    claim_own: set[str], context: set[str], study: set[str], source: str,
    study_populations: set[str], mismatches: list[Mismatch], reasons: list[str],
    shared: list[str], *, generic: bool = False,
) -> None:
    kind = "condition"
    # "Depressive episodes of bipolar disorder": the broader word names the narrower one.
    claim_own = claim_own - {a for k in claim_own for a in vocabulary.ancestors(kind, k)}
    claimed = (claim_own | context) if generic else (claim_own or context)
    whose = "the claim" if claim_own else "the claim's article"
    if not claimed:
        reasons.append("condition: neither the claim nor its article names a condition, so "
                       "it is not compared")
        return
    if not claim_own:
        reasons.append(f"condition: the claim names no condition; its article is about "
                       f"{_quote(_labels(kind, claimed))}")
    elif generic and context:
        reasons.append(f"condition: the claim's general words ('mental health', 'mood') stand "
                       f"for its article's {_quote(_labels(kind, context))}")
    if not study:
        mismatches.append(Mismatch(kind, _labels(kind, claimed), (), blocking=True))
        reasons.append(f"condition: {whose} is about {_quote(_labels(kind, claimed))}; the "
                       "study's title, MeSH and abstract name no condition in the vocabulary")
        return
    covered: list[str] = []
    broader: dict[str, set[str]] = {}
    excluded: dict[str, set[str]] = {}
    different: list[str] = []
    for key in sorted(claimed):
        subgroups = {s for s in study if key in vocabulary.ancestors(kind, s)}
        wider = study & vocabulary.ancestors(kind, key)
        concept = vocabulary.get(kind, key)
        if key in study or subgroups:
            covered.append(key)
            separate = {s for s in subgroups if key not in study
                        and getattr(vocabulary.get(kind, s), "separate", False)}
            if separate:
                mismatches.append(Mismatch(kind, _labels(kind, [key]), _labels(kind, separate)))
                reasons.append(f"condition: {whose} is about {_quote(_labels(kind, [key]))}; "
                               f"the study ({source}) is only about the distinct "
                               f"{_quote(_labels(kind, separate))}")
        elif wider and concept is not None and concept.separate:
            excluded[key] = wider
        elif wider:
            broader[key] = wider
        else:
            different.append(key)
    study_labels = _labels(kind, study)
    for key, wider in excluded.items():
        reasons.append(f"condition: {whose} is about {_quote(_labels(kind, [key]))}; the study "
                       f"({source}) is about {_quote(_labels(kind, wider))}, whose studies "
                       f"usually exclude {_quote(_labels(kind, [key]))}")
    for key, wider in broader.items():
        if key not in claim_own:
            continue  # the article names the narrower group; this claim does not
        mismatches.append(Mismatch("population", _labels(kind, [key]), _labels(kind, wider)))
        reasons.append(f"population: {whose} is about {_quote(_labels(kind, [key]))}; the "
                       f"study ({source}) is about the broader {_quote(_labels(kind, wider))}")
    matched = covered or list(broader)
    if matched:
        shared.append(kind)
    if claim_own:
        # The article's conditions a general word stands for need not all be covered; a
        # study covering one of several conditions a claim lists bears on that part of it.
        missing = [k for k in different + list(excluded) if k in claim_own]
        if missing and not matched:
            mismatches.append(Mismatch(kind, _labels(kind, missing), study_labels,
                                       blocking=True))
        if different:
            reasons.append(f"condition: the claim is about {_quote(_labels(kind, different))}"
                           f"; the study ({source}) is about {_quote(study_labels)}"
                           + (" (it bears on the rest of the claim)" if matched else ""))
    elif not matched:
        mismatches.append(Mismatch(kind, _labels(kind, claimed), study_labels, blocking=True))
        reasons.append(f"condition: the study ({source}) is about {_quote(study_labels)}, none "
                       f"of the conditions the claim's article is about")
    if covered:
        reasons.append(f"condition: the study ({source}) covers {whose}'s "
                       f"{_quote(_labels(kind, covered))}")
    for key in [k for k in covered + list(broader) if k in claim_own]:
        concept = vocabulary.get(kind, key)
        contrary = study_populations & set(concept.contrary if concept else ())
        if contrary:
            mismatches.append(Mismatch("population", _labels(kind, [key]),
                                       _labels("population", contrary)))
            reasons.append(f"population: {whose} is about {_quote(_labels(kind, [key]))}; the "
                           f"study is in {_quote(_labels('population', contrary))}")


def _compare_interventions(
    claim_own: set[str], context: set[str], study: set[str], source: str,
    mismatches: list[Mismatch], reasons: list[str], shared: list[str],
) -> None:
    kind = "intervention"
    # The claim's subject: what it names that its article is about; otherwise what it
    # names other than comparators ("unlike SSRIs"); otherwise its article's main
    # intervention.
    named = {k for k in claim_own
             if not getattr(vocabulary.get(kind, k), "comparator", "")}
    subject = (claim_own & context) or named or context or claim_own
    whose = "the claim" if claim_own else "the claim's article"
    if not subject:
        reasons.append("intervention: neither the claim nor its article names an "
                       "intervention, so it is not compared")
        return
    if not study:
        mismatches.append(Mismatch(kind, _labels(kind, subject), (), blocking=True))
        reasons.append(f"intervention: {whose} is about {_quote(_labels(kind, subject))}; the "
                       "study's title, abstract and MeSH name no intervention in the "
                       "vocabulary")
        return
    if subject & study:
        shared.append(kind)
        reasons.append(f"intervention: the study ({source}) is about {whose}'s "
                       f"{_quote(_labels(kind, subject & study))}")
        return
    substances = {vocabulary.substance(k) for k in subject}
    same_substance = {k for k in study if vocabulary.substance(k) in substances}
    if same_substance:
        shared.append(kind)
        mismatches.append(Mismatch(kind, _labels(kind, subject), _labels(kind, same_substance)))
        reasons.append(f"intervention: {whose} is about {_quote(_labels(kind, subject))}; the "
                       f"study ({source}) is about another form, "
                       f"{_quote(_labels(kind, same_substance))}")
        return
    mismatches.append(Mismatch(kind, _labels(kind, subject), _labels(kind, study),
                               blocking=True))
    reasons.append(f"intervention: {whose} is about {_quote(_labels(kind, subject))}; the "
                   f"study ({source}) is about {_quote(_labels(kind, study))}")


def _compare_named(
    dimension: str, kind: str, claimed: set[str], study: set[str], source: str,
    mismatches: list[Mismatch], reasons: list[str], *, what: str,
) -> None:
    """Routes and age groups: compared only when both sides name some."""
    if not claimed:
        reasons.append(f"{dimension}: the claim names no {what}, so it is not compared")
    elif not study:
        reasons.append(f"{dimension}: the study names no {what}, so it is not compared")
    elif claimed & study:
        reasons.append(f"{dimension}: the study ({source}) has the claim's "
                       f"{_quote(_labels(kind, claimed & study))}")
    else:
        mismatches.append(Mismatch(dimension, _labels(kind, claimed), _labels(kind, study)))
        reasons.append(f"{dimension}: the claim is about {_quote(_labels(kind, claimed))}; "
                       f"the study ({source}) is about {_quote(_labels(kind, study))}")


def assess_indirectness(
    claim_text: str,
    *,
    study_title: str,
    study_mesh: Sequence[str] = (),
    study_abstract: str = "",
    context: ClaimContext | None = None,
) -> Indirectness:
    """Compare a claim's condition, intervention, route and population with a study's.

    Conditions: each condition the claim names must be one the study names, or a subgroup
    of it (a treatment-resistant-depression trial bears on a depression claim). A study
    only of the broader condition (depression, for a treatment-resistant-depression
    claim) is a population mismatch, except for conditions whose vocabulary entry is
    ``separate`` (unipolar depression trials exclude bipolar patients, so they do not fit a
    bipolar-depression claim). A study in a population the condition's entry names as
    ``contrary`` (drug-naive patients, for treatment resistance) is a population
    mismatch. A claim that names no condition is read with its article's conditions
    (``context``): the study must be about one of them. Interventions: the claim's subject
    (what it names that its article is about, else what it names, else its article's main
    intervention) must be the study's; another form of the same substance (esketamine for
    racemic ketamine) is an intervention mismatch, another substance or none means the study
    does not fit. Routes and age groups are compared only when both sides name some.
    Studies only in animals, or only in healthy volunteers, are population mismatches.

    The study's terms come from the title and MeSH; the abstract is read only when those
    name nothing of a kind (abstracts mention comparators and comorbidities).
    Interventions come from the title, then the abstract, then MeSH, because the MeSH
    heading "Ketamine" is also used for esketamine.

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
    context : ClaimContext, optional
        The claim's article's conditions and main interventions (`article_context`).

    Returns
    -------
    Indirectness
        The mismatches (blocking ones mean the study does not fit) and the reasons.
    """
    claim = _clean(claim_text)
    title = _clean(study_title)
    abstract = _clean(study_abstract)
    ctx = context or ClaimContext()
    mismatches: list[Mismatch] = []
    reasons: list[str] = []

    def terms(kind: str, *, mesh_first: bool = True) -> tuple[set[str], str]:
        in_title = vocabulary.find(kind, title)
        in_mesh = vocabulary.find_mesh(kind, study_mesh)
        in_abstract = vocabulary.find(kind, abstract)
        if mesh_first:
            return _study_terms([("title/MeSH", in_title | in_mesh), ("abstract", in_abstract)])
        return _study_terms([("title", in_title), ("abstract", in_abstract),
                             ("MeSH", in_mesh)])

    study_conditions, source = terms("condition")
    # A study of a separate subgroup (bipolar depression) uses the broader word for it.
    study_conditions -= {a for k in study_conditions
                         if getattr(vocabulary.get("condition", k), "separate", False)
                         for a in vocabulary.ancestors("condition", k)}
    study_populations = (vocabulary.find("population", title)
                         | vocabulary.find("population", abstract)
                         | vocabulary.find_mesh("population", study_mesh))
    shared: list[str] = []
    _compare_conditions(vocabulary.find("condition", claim), set(ctx.conditions),
                        study_conditions, source, study_populations, mismatches, reasons,
                        shared, generic=bool(vocabulary.GENERIC_CONDITION_RE.search(claim)))
    study_drugs, source = terms("intervention", mesh_first=False)
    _compare_interventions(vocabulary.find("intervention", claim), set(ctx.interventions),
                           study_drugs, source, mismatches, reasons, shared)
    study_routes, source = terms("route")
    claim_routes = vocabulary.find("route", claim)
    others = {k for k in vocabulary.find("intervention", claim) - set(ctx.interventions)
              if not getattr(vocabulary.get("intervention", k), "comparator", "")}
    if not claim_routes and ctx.routes and not others:
        claim_routes = set(ctx.routes)
        reasons.append(f"route: the claim names none; its article's is "
                       f"{_quote(_labels('route', claim_routes))}")
    _compare_named("route", "route", claim_routes, study_routes, source,
                   mismatches, reasons, what="route or form")

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
    claim_conditions = vocabulary.find("condition", claim) or set(ctx.conditions)
    if healthy and claim_conditions and not study_conditions:
        mismatches.append(Mismatch("population", _labels("condition", claim_conditions),
                                   ("healthy volunteers",)))
        reasons.append(f"population: the study is in healthy volunteers ({healthy}); the "
                       f"claim is about {_quote(_labels('condition', claim_conditions))}")
    contrary = {k for c in vocabulary.concepts("condition") for k in c.contrary}
    ages, source = terms("population")
    _compare_named("population", "population", vocabulary.find("population", claim) - contrary,
                   ages - contrary, source, mismatches, reasons, what="age group")

    ranks = {d: i for i, d in enumerate(INDIRECTNESS_DIMENSIONS)}
    mismatches.sort(key=lambda m: (ranks[m.dimension], not m.blocking))
    on_topic = not any(m.blocking for m in mismatches)
    return Indirectness(on_topic and bool(mismatches), tuple(mismatches), tuple(reasons),
                        tuple(shared))


def non_clinical_statement(claim_text: str) -> str | None:
    """What makes a claim one no clinical study can substantiate, or None.

    Regulatory statements (see `regulatory_statement`), history ("originally developed in
    the 1960s"), prevalence ("the most common mental health conditions") and cost or
    coverage.
    """
    reason = regulatory_statement(claim_text)
    if reason is not None:
        return reason
    for name, pattern in vocabulary.NON_CLINICAL_PATTERNS:
        match = pattern.search(claim_text)
        if match:
            return f"a {name} statement ('{match.group(0)}')"
    return None


def regulatory_statement(claim_text: str) -> str | None:
    """What makes a claim a regulatory statement (approval, scheduling, label), or None.

    No clinical study can substantiate such a statement: it needs the drug label or the
    agency's decision, which a reviewer attaches as a non-PubMed source.

    Parameters
    ----------
    claim_text : str
        The claim as written.

    Returns
    -------
    str or None
        A reason naming the kind of statement and the words that show it.
    """
    for name, pattern in vocabulary.REGULATORY_PATTERNS:
        match = pattern.search(claim_text)
        if match:
            return f"a regulatory statement ({name}: '{match.group(0)}')"
    return None


def named_concepts(text: str) -> dict[str, tuple[str, ...]]:
    """The conditions, interventions, routes and populations a text names, by label.

    See `evidence.vocabulary.named_concepts`.
    """
    return vocabulary.named_concepts(text)


# ---------------------------------------------------------------------------------------
# GRADE certainty suggestion
# ---------------------------------------------------------------------------------------

GRADE_LEVELS: tuple[str, ...] = CERTAINTY
"""GRADE certainty levels, strongest first (the vocabulary's `CERTAINTY`)."""

_SUPPORTING = ("supports", "partially_supports")
_RANDOMISED_START = (RCT,)
_SYNTHESES = (META_ANALYSIS, SYSTEMATIC_REVIEW)
_CONTROLLED = (NON_RANDOMISED_TRIAL, COHORT, CASE_CONTROL, OBSERVATIONAL)
_UNCONTROLLED = (CASE_SERIES, CASE_REPORT)
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
        The study fits the claim (shares its condition and intervention) or, once
        assessed, the reviewer did not rate its relevance "none".
    stance : str or None
        One of `STANCES`, or None when not yet assessed.
    indirect : bool
        The study answers a somewhat different question (see `assess_indirectness`).
    retracted : bool
        The study is retracted.
    flags : sequence of str
        `FLAG_CODES` raised for the study ("retracted" also excludes it;
        "expression_of_concern" is a risk of bias).
    label : str
        How reasons name the study, e.g. ``"PMID 12345"``; optional.
    relevance : str or None
        The reviewer's relevance (`RELEVANCE`); "low" counts as indirect, "none" as not
        relevant. None when not assessed.
    indirect_dimensions : sequence of str
        The `INDIRECTNESS_DIMENSIONS` the study differs on, for the reasons.
    study : str
        Which study this is, e.g. ``"PMID 12345"``: several reviewers' readings of one
        study share it, so reasons count studies, not readings. Empty: each item is its
        own study.
    """

    design: str
    rank: int
    relevant: bool
    stance: str | None
    indirect: bool
    retracted: bool
    flags: Sequence[str] = ()
    label: str = ""
    relevance: str | None = None
    indirect_dimensions: Sequence[str] = ()
    study: str = ""


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
    basis : str
        ``"assessments"`` when reviewers' stances were used, ``"metadata"`` when the
        suggestion rests on the linked records alone (nothing assessed yet).
    """

    level: str
    start_level: str
    downgrades: tuple[tuple[str, str], ...]
    reasons: tuple[str, ...]
    basis: str = "metadata"


def _start(item: LinkEvidence) -> tuple[str, str]:
    """GRADE starting certainty for one study's design, and why."""
    if item.design in _RANDOMISED_START:
        return "high", "randomised controlled trial"
    if item.design in _SYNTHESES:
        if item.rank >= RANK_RANDOMISED_SYNTHESIS:
            return "high", "systematic review / meta-analysis of randomised trials"
        return "low", "systematic review / meta-analysis of non-randomised or unstated designs"
    if item.design in _CONTROLLED:
        return "low", f"non-randomised study ({item.design.replace('_', ' ')})"
    if item.design in _UNCONTROLLED:
        return "low", f"uncontrolled study ({item.design.replace('_', ' ')})"
    if item.design in _NON_HUMAN:
        return "very_low", "animal or in-vitro research"
    if item.design == UNKNOWN:
        return "very_low", "design unknown"
    return "very_low", f"{item.design.replace('_', ' ')} (expert opinion)"


def _strength(level: str) -> int:
    """Higher is more certain."""
    return len(GRADE_LEVELS) - GRADE_LEVELS.index(level)


def _names(items: Sequence[LinkEvidence]) -> str:
    labels = [i.label for i in items if i.label]
    studies = len({i.study or f"#{n}" for n, i in enumerate(items)})
    count = f"{studies} stud{'y' if studies == 1 else 'ies'}"
    if studies < len(items):  # several reviewers read the same study
        count += f", {len(items)} readings"
    return f"{count} ({', '.join(labels)})" if labels else count


def _direction(stance: str | None) -> str | None:
    """Whether a stance is for or against the claim; None when not assessed."""
    if stance in _SUPPORTING:
        return "for"
    return "against" if stance == "contradicts" else None


def _lower(level: str, steps: int) -> str:
    return GRADE_LEVELS[min(len(GRADE_LEVELS) - 1, GRADE_LEVELS.index(level) + steps)]


def _is_indirect(item: LinkEvidence) -> bool:
    return item.indirect or item.relevance == "low"


def _indirect_why(item: LinkEvidence) -> str:
    parts = list(item.indirect_dimensions) if item.indirect else []
    if item.relevance == "low":
        parts.append("relevance rated low")
    what = ", ".join(dict.fromkeys(parts)) or "indirect"
    return f"{item.label or 'a study'}: {what}"


def suggest_certainty(evidence: Sequence[LinkEvidence]) -> CertaintySuggestion:
    """Suggest a GRADE certainty for a claim from its linked evidence.

    When any link has been assessed (has a stance) the suggestion rests on the assessed
    links only, with their stances and relevance; otherwise it rests on the records alone
    and says so (``basis="metadata"``). Retracted studies never count; studies judged not
    relevant or "does not address" are excluded; every exclusion is named.

    The best of the remaining studies set the starting level: high for randomised trials
    and systematic reviews / meta-analyses of randomised trials; low for non-randomised
    and uncontrolled studies; very low for expert opinion, animal and in-vitro work or an
    unknown design. Then one level down for each of:

    * risk of bias: every best study has an expression of concern; or the best evidence
      is uncontrolled (case series, case reports, single-arm studies);
    * inconsistency: studies at the best starting level both support and contradict the
      claim (a weaker study disagreeing is noted, not rated down);
    * indirectness: every best study is indirect (another population, form, route; or
      relevance rated low).

    Uncontrolled evidence therefore never rises above low (it starts there and is not
    upgraded). Imprecision and publication bias are left to the reviewer. The level never
    goes below very low.

    Parameters
    ----------
    evidence : sequence of LinkEvidence
        Every link of the claim, relevant or not.

    Returns
    -------
    CertaintySuggestion
        The suggested level, the starting level, the downgrades, the reasons and basis.

    Raises
    ------
    ValueError
        If a link has a design outside `DESIGNS`, a stance outside `STANCES` or a
        relevance outside `RELEVANCE`.
    """
    for item in evidence:
        if item.design not in DESIGNS:
            raise ValueError(f"unknown design {item.design!r}; expected one of {DESIGNS}")
        if item.stance is not None and item.stance not in STANCES:
            raise ValueError(f"unknown stance {item.stance!r}; expected one of {STANCES}")
        if item.relevance is not None and item.relevance not in vocabulary.RELEVANCE:
            raise ValueError(f"unknown relevance {item.relevance!r}; expected one of "
                             f"{vocabulary.RELEVANCE}")

    assessed = [i for i in evidence if i.stance is not None]
    basis = "assessments" if assessed else "metadata"
    reasons: list[str] = []
    if assessed:
        reasons.append(f"from reviewers' assessments of {_names(assessed)}")
        unassessed = len(evidence) - len(assessed)
        if unassessed:
            reasons.append(f"{unassessed} linked stud{'y' if unassessed == 1 else 'ies'} not "
                           "assessed yet, not considered")
        pool = assessed
    else:
        reasons.append("metadata-only suggestion: no reviewer has assessed the linked "
                       "studies yet (design and fit only, no stance)")
        pool = list(evidence)

    irrelevant: list[LinkEvidence] = []
    retracted: list[LinkEvidence] = []
    silent: list[LinkEvidence] = []
    body: list[LinkEvidence] = []
    for item in pool:
        if item.retracted or "retracted" in item.flags:
            retracted.append(item)
        elif not item.relevant or item.relevance == "none":
            irrelevant.append(item)
        elif item.stance == "does_not_address":
            silent.append(item)
        else:
            body.append(item)
    if retracted:
        reasons.append(f"excluded {_names(retracted)}: retracted, never counts as evidence")
    if irrelevant:
        reasons.append(f"excluded {_names(irrelevant)}: not relevant (does not fit the "
                       "claim, or relevance rated none)")
    if silent:
        reasons.append(f"excluded {_names(silent)}: judged not to address the claim")

    if not body:
        reasons.append("no relevant evidence" + (" apart from retracted studies"
                                                 if retracted else ""))
        reasons.append("suggested certainty: very_low")
        return CertaintySuggestion("very_low", "very_low", (), tuple(reasons), basis)

    starts = [(_start(i), i) for i in body]
    start_level = max((s[0] for s, _ in starts), key=_strength)
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

    downgrades: list[tuple[str, str]] = []
    concern = [i for i in best if "expression_of_concern" in i.flags]
    uncontrolled = [i for i in best if i.design in _UNCONTROLLED]
    bias: list[str] = []
    if concern and len(concern) == len(best):
        bias.append(f"expression of concern on every best study: {_names(concern)}")
    elif concern:
        reasons.append(f"expression of concern on {_names(concern)}, not on every best study "
                       "(noted, not rated down)")
    if uncontrolled and len(uncontrolled) == len(best):
        bias.append(f"no control group: {_names(uncontrolled)}")
    if bias:
        downgrades.append(("risk_of_bias", "; ".join(bias)))
    # Inconsistency is judged among the studies that set the level: a case report
    # disagreeing with randomised trials is noted, not rated down.
    supporting = [i for i in best if i.stance in _SUPPORTING]
    contradicting = [i for i in best if i.stance == "contradicts"]
    if supporting and contradicting:
        downgrades.append(("inconsistency", f"{_names(supporting)} support the claim and "
                                            f"{_names(contradicting)} contradict it, at the "
                                            "same starting level"))
    best_directions = {_direction(i.stance) for i in best} - {None}
    weaker_directions = {_direction(i.stance) for i in body if i not in best} - {None}
    if best_directions and weaker_directions - best_directions:
        reasons.append("weaker studies disagree with the best evidence (noted, not rated "
                       "down)")
    if all(_is_indirect(i) for i in best):
        downgrades.append(("indirectness", "every best study is indirect: "
                           + "; ".join(_indirect_why(i) for i in best)))

    level = _lower(start_level, len(downgrades))
    for domain, reason in downgrades:
        reasons.append(f"rated down one level for {domain.replace('_', ' ')}: {reason}")
    if GRADE_LEVELS.index(start_level) + len(downgrades) >= len(GRADE_LEVELS):
        reasons.append("already at very low: further downgrades cannot lower it")
    partial = [i for i in best if i.stance == "partially_supports"]
    if partial and len(partial) == len(supporting) and not contradicting:
        reasons.append(f"the best evidence only partly supports the claim ({_names(partial)}):"
                       " consider the verdict 'partially substantiated'")
    reasons.append("imprecision and publication bias not assessed automatically (need effect "
                   "sizes and sample sizes): the reviewer judges them")
    if contradicting and not supporting:
        reasons.append("the best evidence contradicts the claim: certainty is about the "
                       "evidence, not support for the claim")
    reasons.append(f"suggested certainty: {level}")
    return CertaintySuggestion(level, start_level, tuple(downgrades), tuple(reasons), basis)


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
