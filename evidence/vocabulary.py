"""The domain vocabulary: every list of terms the rules, the ranker and the extractor share.

One fact, one place. Conditions, interventions (with their forms: racemic ketamine,
esketamine, arketamine), routes, populations and outcomes are `Concept` entries, each with
the patterns that find it in free text (its synonyms), its MeSH headings and the words a
PubMed query searches for it. Claim extraction, ranking, indirectness, citation fit and
PubMed queries all read them from here, as do the stop words, the generic health words, the
identifier patterns (DOI, PMID, PMCID), the one stemmer, and the vocabularies of designs,
evidence levels, GRADE certainty, stances and flags.

Extending the vocabulary to a new therapy area is adding entries, not code::

    from evidence import vocabulary as v
    v.register(
        v.Concept("acupuncture", "acupuncture", (r"\\bacupuncture\\b",),
                  ("Acupuncture Therapy",), kind="intervention", area="ear"),
        v.Concept("tinnitus", "tinnitus", (r"\\btinnitus\\b",), ("Tinnitus",),
                  kind="condition", area="ear"),
    )

(`extended` does the same for the length of a ``with`` block.) Everything that reads a
lexicon asks `concepts(kind)` at call time, so new entries are seen at once.

Orders: evidence levels and GRADE certainty are listed strongest first, everywhere.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import Stemmer

# ---------------------------------------------------------------------------------------
# Concepts
# ---------------------------------------------------------------------------------------

KINDS: tuple[str, ...] = ("condition", "intervention", "route", "population", "outcome")
"""What a `Concept` can name."""


@dataclass(frozen=True, slots=True)
class Concept:
    """One entry of the vocabulary: a condition, intervention, route, population or outcome.

    Attributes
    ----------
    key : str
        Stable identifier, unique within its kind.
    label : str
        Words shown to reviewers.
    patterns : tuple of str
        Regular expressions for the concept's synonyms in free text (case-insensitive
        unless they set ``(?-i:...)``).
    mesh : tuple of str
        MeSH descriptor names that mean the concept.
    kind : str
        One of `KINDS`.
    parent : str or None
        Key of the broader concept of the same kind (treatment-resistant depression →
        depression; esketamine → ketamine as a *form*, see ``form_of``).
    terms : tuple of str
        Title/abstract words a PubMed query searches for (``depress*``); empty: the label.
    query_extra : tuple of str
        Further PubMed clauses (e.g. ``'"adverse effects"[sh]'``).
    form_of : str or None
        For interventions: the substance this is a form of (esketamine is a form of
        ketamine). Forms are different interventions for fit and indirectness, but one
        substance for a PubMed search and for grouping claims.
    area : str
        The therapy area the entry was added for ("" for the shared core).
    separate : bool
        For conditions: studies of the parent condition usually exclude this one
        (unipolar depression trials exclude bipolar patients), so they do not fit a claim
        about it.
    contrary : tuple of str
        For conditions: population keys that contradict it (drug-naive patients are not
        treatment-resistant): a study in such a population is indirect evidence.
    comparator : str
        For interventions usually named as what a therapy is compared with (SSRIs,
        "antidepressants"): the one word claims about any of them are grouped under. Such
        an intervention is an article's subject only when the article names nothing else.
    """

    key: str
    label: str
    patterns: tuple[str, ...]
    mesh: tuple[str, ...] = ()
    kind: str = "condition"
    parent: str | None = None
    terms: tuple[str, ...] = ()
    query_extra: tuple[str, ...] = ()
    form_of: str | None = None
    area: str = ""
    separate: bool = False
    contrary: tuple[str, ...] = ()
    comparator: str = ""

    def query_clause(self) -> str:
        """The PubMed block for this concept: its words in [tiab] OR its MeSH headings."""
        parts = [f'"{t}"[tiab]' if (" " in t or "-" in t) else f"{t}[tiab]"
                 for t in (self.terms or (self.label,))]
        parts += [f'"{m}"[mh]' for m in self.mesh]
        parts += list(self.query_extra)
        return "(" + " OR ".join(dict.fromkeys(parts)) + ")"


_CONDITIONS: tuple[Concept, ...] = (
    Concept("depression", "depression", (
        r"(?<!respiratory )(?<!cns )(?<!respiratory-)\bdepress(?:ion|ions|ive|ed)\b",
        r"(?-i:\bMDD\b)", r"\bunipolar\b", r"\bantidepressant\b",
    ), ("Depression", "Depressive Disorder", "Depressive Disorder, Major"),
        terms=("depress*",)),
    Concept("treatment_resistant_depression", "treatment-resistant depression", (
        r"\btreatment[- ](?:resistant|refractory)\s+(?:major\s+)?(?:depression|depressive)",
        r"\b(?:resistant|refractory)\s+(?:major\s+)?depression\b", r"(?-i:\bTRD\b)",
        r"\b(?:have|has)\s+not\s+(?:responded|found\s+relief)\b",
        r"\bnot\s+respond(?:ed)?\s+to\s+(?:\w+\s+){0,2}(?:antidepressants|treatments)\b",
        r"\btreatment[- ](?:resistant|refractory)\s+(?:cases|conditions|patients|individuals)\b",
        r"\bresistant\s+to\s+(?:traditional|conventional|standard|other)\s+(?:therapies|"
        r"treatments|antidepressants)\b",
        r"\b(?:conventional|traditional|standard|other)\s+(?:treatments|therapies)\s+"
        r"(?:have\s+)?(?:fall(?:en)?\s+short|failed)\b",
    ), ("Depressive Disorder, Treatment-Resistant",), parent="depression",
        terms=("treatment-resistant", "treatment resistant", "refractory depression"),
        contrary=("treatment_naive",)),
    Concept("bipolar_depression", "bipolar depression", (
        r"\bbipolar(?:\s+(?:i{1,2}\s+)?(?:depression|disorder|depressive\s+episodes?))?\b",
    ), ("Bipolar Disorder", "Bipolar Depression"), parent="depression", terms=("bipolar",),
        separate=True),
    Concept("postpartum_depression", "postpartum depression", (
        r"\b(?:postpartum|postnatal|perinatal|peripartum)\s+depression\b",
    ), ("Depression, Postpartum",), parent="depression", terms=("postpartum", "perinatal")),
    Concept("suicidal_ideation", "suicidal ideation", (
        r"\bsuicid(?:e|al|ality)\b",
    ), ("Suicidal Ideation", "Suicide", "Suicide, Attempted"), terms=("suicid*",)),
    Concept("ptsd", "PTSD", (
        r"\bpost-?\s?traumatic\s+stress\b", r"(?-i:\bPTSD\b)",
    ), ("Stress Disorders, Post-Traumatic",), terms=("PTSD", "posttraumatic",
                                                     "post-traumatic")),
    Concept("anxiety", "anxiety", (
        r"\banxiety\b", r"\banxious\b", r"(?-i:\bGAD\b)", r"\bpanic\s+disorder\b",
        r"\bsocial\s+phobia\b",
    ), ("Anxiety", "Anxiety Disorders", "Panic Disorder", "Phobia, Social"),
        terms=("anxiety", "anxious")),
    Concept("ocd", "OCD", (
        r"\bobsessive[- ]compulsive\b", r"(?-i:\bOCD\b)",
    ), ("Obsessive-Compulsive Disorder",), terms=("obsessive-compulsive",)),
    Concept("pain", "pain", (
        r"\bpain(?:ful)?\b",
    ), ("Pain", "Back Pain", "Low Back Pain"), terms=("pain", "analges*")),
    Concept("chronic_pain", "chronic pain", (
        r"\bchronic\s+(?:\w+\s+){0,2}pain\b", r"\bneuropathic\s+pain\b", r"\bfibromyalgia\b",
        r"\bcomplex\s+regional\s+pain\s+syndromes?\b", r"(?-i:\bCRPS\b)",
    ), ("Chronic Pain", "Neuralgia", "Fibromyalgia", "Complex Regional Pain Syndromes"),
        parent="pain", terms=("chronic pain", "fibromyalgia", "neuropathic")),
    Concept("acute_pain", "acute or postoperative pain", (
        r"\b(?:acute|postoperative|post-operative|perioperative)\s+pain\b",
    ), ("Acute Pain", "Pain, Postoperative"), parent="pain",
        terms=("acute pain", "postoperative pain")),
    Concept("migraine", "migraine or headache", (
        r"\bmigraines?\b", r"\bheadaches?\b",
    ), ("Migraine Disorders", "Headache", "Headache Disorders"),
        terms=("migraine", "headache*")),
    Concept("eating_disorders", "eating disorders", (
        r"\beating\s+disorders?\b", r"\banorexia\s+nervosa\b", r"\bbulimi(?:a|c)\b",
        r"\bbinge[- ]eating\b",
    ), ("Feeding and Eating Disorders", "Anorexia Nervosa", "Bulimia Nervosa",
        "Binge-Eating Disorder", "Bulimia"),
        terms=("eating disorder*", "anorexia", "bulimi*")),
    Concept("substance_use_disorder", "substance use disorder", (
        r"\bsubstance\s+(?:use\s+)?(?:disorders?|abuse|dependence)\b", r"\baddiction\b",
        r"\bdrug\s+(?:abuse|dependence)\b", r"(?-i:\bSUDs?\b)",
    ), ("Substance-Related Disorders",), terms=("addict*", "substance use")),
    Concept("alcohol_use_disorder", "alcohol use disorder", (
        r"\balcohol\s+(?:use\s+disorders?|dependence|abuse|addiction)\b", r"\balcoholism\b",
        r"(?-i:\bAUD\b)",
    ), ("Alcoholism", "Alcohol-Related Disorders"), parent="substance_use_disorder",
        terms=("alcohol use", "alcoholism")),
    Concept("opioid_use_disorder", "opioid use disorder", (
        r"\bopioid\s+(?:use\s+disorders?|dependence|addiction|withdrawal)\b", r"(?-i:\bOUD\b)",
    ), ("Opioid-Related Disorders",), parent="substance_use_disorder",
        terms=("opioid use", "opioid dependence")),
    Concept("urological_harm", "bladder and urinary tract damage", (
        r"\bbladder\b", r"\burinary\s+tract\b", r"\burinary\b", r"\bcystitis\b",
        r"\buropathy\b",
    ), ("Cystitis", "Urinary Bladder Diseases", "Lower Urinary Tract Symptoms"),
        terms=("cystitis", "bladder", "urinary")),
    # Weight loss and diabetes (GLP-1 receptor agonists).
    Concept("obesity", "obesity or overweight", (
        r"\bobes(?:e|ity)\b", r"\boverweight\b",
    ), ("Obesity", "Overweight", "Obesity, Morbid"), terms=("obes*", "overweight"),
        area="weight"),
    Concept("type2_diabetes", "type 2 diabetes", (
        r"\btype\s+(?:2|ii)\s+diabetes\b", r"(?-i:\bT2DM?\b)",
    ), ("Diabetes Mellitus, Type 2",), terms=("type 2 diabetes",), area="weight"),
    Concept("psychosis", "schizophrenia or psychosis", (
        r"\bschizophreni(?:a|c)\b", r"\bpsychos[ie]s\b",
    ), ("Schizophrenia", "Psychotic Disorders"), terms=("schizophreni*", "psychosis")),
    Concept("anaesthesia", "anaesthesia or sedation (surgical / procedural use)", (
        r"\bana?esthesia\b", r"\bprocedural\s+sedation\b",
    ), ("Anesthesia", "Anesthesia, General", "Conscious Sedation", "Deep Sedation"),
        terms=("anesthesia", "sedation")),
)

_INTERVENTIONS: tuple[Concept, ...] = (
    Concept("ketamine", "ketamine", (
        r"\bketamine\b", r"\bracemic\s+ketamine\b", r"\bketalar\b",
    ), ("Ketamine",), kind="intervention", terms=("ketamine", "esketamine")),
    Concept("esketamine", "esketamine", (
        r"\besketamine\b", r"\bS-ketamine\b", r"\(S\)-ketamine\b", r"\bspravato\b",
    ), kind="intervention", form_of="ketamine", terms=("esketamine",)),
    Concept("arketamine", "arketamine", (
        r"\barketamine\b", r"\bR-ketamine\b", r"\(R\)-ketamine\b",
    ), kind="intervention", form_of="ketamine", terms=("arketamine",)),
    Concept("ect", "electroconvulsive therapy", (
        r"\belectroconvulsive\b", r"(?-i:\bECT\b)", r"\belectroshock\b",
    ), ("Electroconvulsive Therapy",), kind="intervention", terms=("electroconvulsive",)),
    Concept("tms", "transcranial magnetic stimulation", (
        r"\btranscranial\s+magnetic\s+stimulation\b", r"(?-i:\br?TMS\b)",
    ), ("Transcranial Magnetic Stimulation",), kind="intervention",
        terms=("transcranial magnetic stimulation",)),
    Concept("psilocybin", "psilocybin", (r"\bpsilocybin\b", r"\bmagic\s+mushrooms?\b"),
            ("Psilocybin",), kind="intervention"),
    Concept("mdma", "MDMA", (
        r"(?-i:\bMDMA\b)", r"\bmethylenedioxymethamphetamine\b", r"\becstasy\b",
    ), ("N-Methyl-3,4-methylenedioxyamphetamine",), kind="intervention", terms=("MDMA",)),
    Concept("nitrous_oxide", "nitrous oxide", (r"\bnitrous\s+oxide\b",), ("Nitrous Oxide",),
            kind="intervention"),
    Concept("ssri", "SSRIs", (
        r"\bssris?\b", r"\bselective\s+serotonin\s+reuptake\s+inhibitors?\b",
        r"\bfluoxetine\b", r"\bsertraline\b", r"\bescitalopram\b", r"\bcitalopram\b",
        r"\bparoxetine\b",
    ), ("Selective Serotonin Reuptake Inhibitors",), kind="intervention",
        terms=("SSRI*", "serotonin reuptake inhibitor*"), comparator="antidepressant"),
    Concept("antidepressant", "antidepressants", (
        r"\bantidepressants\b", r"\b(?:traditional|conventional|standard|oral)\s+"
        r"antidepressant\b", r"\bantidepressive\s+agents?\b",
    ), ("Antidepressive Agents",), kind="intervention", terms=("antidepress*",),
        comparator="antidepressant"),
    Concept("semaglutide", "semaglutide", (
        r"\bsemaglutide\b", r"\bwegovy\b", r"\bozempic\b", r"\brybelsus\b",
    ), ("Semaglutide",), kind="intervention", area="weight"),
    Concept("tirzepatide", "tirzepatide", (
        r"\btirzepatide\b", r"\bmounjaro\b", r"\bzepbound\b",
    ), kind="intervention", area="weight"),
    Concept("liraglutide", "liraglutide", (
        r"\bliraglutide\b", r"\bsaxenda\b", r"\bvictoza\b",
    ), ("Liraglutide",), kind="intervention", area="weight"),
    # Wellness-clinic therapies: named so that claims about one never group with another.
    Concept("nad", "NAD+ infusion", (
        r"\bNAD\+?(?=\W|$)", r"\bnicotinamide\s+adenine\s+dinucleotide\b",
    ), ("NAD",), kind="intervention", terms=("NAD", "nicotinamide adenine dinucleotide"),
        area="wellness"),
    Concept("iv_vitamins", "IV vitamin therapy", (
        r"\b(?:iv|intravenous)\s+(?:vitamin|nutrient|micronutrient)s?\b",
        r"\bvitamin\s+(?:drips?|infusions?)\b", r"\bmyers'?\s+cocktail\b",
    ), kind="intervention", terms=("intravenous vitamin", "Myers cocktail"), area="wellness"),
    Concept("hyperbaric_oxygen", "hyperbaric oxygen therapy", (
        r"\bhyperbaric(?:\s+oxygen)?\b", r"(?-i:\bHBOT\b)",
    ), ("Hyperbaric Oxygenation",), kind="intervention", terms=("hyperbaric",),
        area="wellness"),
    Concept("stem_cells", "stem cell therapy", (
        r"\bstem[- ]cells?\s+(?:therapy|therapies|treatments?|injections?|infusions?)\b",
        r"\bmesenchymal\s+stem\s+cells?\b", r"(?-i:\bMSCs?\b)",
    ), ("Stem Cell Transplantation", "Mesenchymal Stem Cell Transplantation"),
        kind="intervention", terms=("stem cell",), area="wellness"),
    Concept("red_light", "red light therapy", (
        r"\bred[- ]light(?:\s+therapy)?\b", r"\bphotobiomodulation\b",
        r"\blow[- ]level\s+(?:laser|light)\s+therapy\b", r"\bnear[- ]infrared\s+light\b",
    ), ("Low-Level Light Therapy",), kind="intervention",
        terms=("photobiomodulation", "low-level light therapy", "red light"), area="wellness"),
    Concept("cbd", "cannabidiol (CBD)", (
        r"(?-i:\bCBD\b)", r"\bcannabidiol\b",
    ), ("Cannabidiol",), kind="intervention", terms=("cannabidiol",), area="wellness"),
    Concept("testosterone", "testosterone therapy", (
        r"\btestosterone\s+(?:replacement|therapy|injections?|gels?|pellets?|cream)\b",
        r"(?-i:\bTRT\b)",
    ), ("Testosterone",), kind="intervention", terms=("testosterone",), area="wellness"),
    Concept("probiotics", "probiotics", (r"\bprobiotics?\b",), ("Probiotics",),
            kind="intervention", area="wellness"),
    Concept("collagen", "collagen supplements", (
        r"\bcollagen\s+(?:peptides|supplements?|powder|drinks?)\b",
    ), kind="intervention", terms=("collagen supplementation",), area="wellness"),
    Concept("prp", "platelet-rich plasma", (
        r"\bplatelet[- ]rich\s+plasma\b", r"(?-i:\bPRP\b)",
    ), ("Platelet-Rich Plasma",), kind="intervention", terms=("platelet-rich plasma",),
        area="wellness"),
    Concept("cryotherapy", "cryotherapy", (
        r"\b(?:whole[- ]body\s+)?cryotherapy\b", r"\bcold\s+plunges?\b",
    ), ("Cryotherapy",), kind="intervention", area="wellness"),
    Concept("psychotherapy", "psychotherapy", (
        r"\bpsychotherap\w*", r"\btalk\s+therapy\b", r"\bcognitive\s+behaviou?ral\b",
        r"(?-i:\bCBT\b)",
    ), ("Psychotherapy",), kind="intervention", terms=("psychotherap*",),
        comparator="psychotherapy"),
)

_ROUTES: tuple[Concept, ...] = (
    Concept("intravenous", "intravenous infusion", (
        r"\bintravenous(?:ly)?\b", r"\binfus(?:ion|ions|ed)\b",
        r"(?-i:\bI\.?V\.?)(?=\s*(?:\)|ketamine|infusions?|line|drip|therapy|treatment|bolus))",
        r"\bi\.v\.",
    ), ("Infusions, Intravenous", "Injections, Intravenous", "Administration, Intravenous"),
        kind="route", terms=("intravenous", "infusion*")),
    Concept("intranasal", "nasal spray", (
        r"\bintranasal(?:ly)?\b", r"\bnasal(?:\s+spray)?\b", r"\bspravato\b",
    ), ("Administration, Intranasal", "Nasal Sprays"), kind="route",
        terms=("intranasal", "nasal spray")),
    Concept("oral", "oral", (
        r"\boral(?:ly)?\s+(?:administered\s+)?(?:es|ar)?ketamine\b",
        r"\b(?:es|ar)?ketamine\s+(?:was\s+)?(?:given|administered|taken)\s+orally\b",
        r"\b(?:es|ar)?ketamine\s+(?:tablets?|capsules?)\b",
        r"\boral\s+administration\s+of\s+(?:es|ar)?ketamine\b",
        r"\b(?:tablets?|capsules?|pills?)\b",
    ), ("Administration, Oral",), kind="route", terms=("oral",)),
    Concept("intramuscular", "intramuscular injection", (
        r"\bintramuscular(?:ly)?\b",
        r"(?-i:\bI\.?M\.?)(?=\s*(?:\)|ketamine|injections?))", r"\bi\.m\.",
    ), ("Injections, Intramuscular",), kind="route", terms=("intramuscular",)),
    Concept("sublingual", "sublingual / buccal lozenge", (
        r"\bsublingual(?:ly)?\b", r"\bbuccal\b", r"\blozenges?\b", r"\btroches?\b",
        r"\borally\s+disintegrating\b",
    ), ("Administration, Sublingual", "Administration, Buccal"), kind="route",
        terms=("sublingual", "buccal")),
    Concept("subcutaneous", "subcutaneous injection", (
        r"\bsubcutaneous(?:ly)?\b",
    ), ("Injections, Subcutaneous",), kind="route", terms=("subcutaneous",)),
)

_POPULATIONS: tuple[Concept, ...] = (
    Concept("children", "children", (
        r"\bchild(?:ren)?\b", r"\bp(?:a)?ediatric\b", r"\bkids\b", r"\binfants?\b",
    ), ("Child", "Child, Preschool", "Infant"), kind="population"),
    Concept("adolescents", "adolescents", (
        r"\badolescen(?:ts?|ce)\b", r"\bteen(?:s|agers?)?\b", r"\byouths?\b",
    ), ("Adolescent",), kind="population"),
    Concept("adults", "adults", (
        r"\badults?\b",
    ), ("Adult", "Young Adult", "Middle Aged"), kind="population"),
    Concept("older_adults", "older adults", (
        r"\belderly\b", r"\bolder\s+(?:adults?|people|patients)\b", r"\bgeriatric\b",
        r"\blate[- ]life\b",
    ), ("Aged", "Aged, 80 and over"), kind="population"),
    Concept("treatment_naive", "drug-naive patients", (
        r"\b(?:drug|treatment|medication|antidepressant)[- ](?:naive|na\u00efve|free)\b",
        r"\bnever\s+(?:been\s+)?(?:treated|medicated)\b",
        r"\bfirst[- ]episode\b(?:\s+\w+){0,3}\s+(?:untreated|naive)\b",
        r"\bunmedicated\b",
    ), kind="population"),
)

_OUTCOMES: tuple[Concept, ...] = (
    Concept("adverse_effects", "adverse effects", (
        r"\bside[- ]effects?\b", r"\badverse\b", r"\bsafe(?:ty|ly)?\b", r"\btolerab\w*",
        r"\brisks?\b",
    ), kind="outcome", terms=("side effect*", "adverse event*", "safety", "tolerab*"),
        query_extra=('"adverse effects"[sh]',)),
    Concept("rapid_onset", "rapid onset", (
        r"\bwithin (?:\w+ )?(?:minutes|hours?|days?|a day|a week)\b", r"\brapid\w*",
        r"\bonset\b", r"\bimmediate\w*", r"\bfast[- ]acting\b", r"\bquick\w*",
    ), ("Time Factors",), kind="outcome", terms=("rapid*", "onset", "hours")),
    Concept("durability", "durability", (
        r"\blong[- ]lasting\b", r"\blong[- ]term\b", r"\bdurab\w*", r"\brelapse\w*",
        r"\bsustained\b", r"\bmaintenance\b",
    ), kind="outcome", terms=("relapse", "maintenance", "sustained", "long-term", "durab*")),
    Concept("response", "response or remission", (
        r"\bremission\b", r"\bresponse rates?\b", r"\bsuccess rates?\b", r"\bresponders?\b",
    ), kind="outcome", terms=("remission", "response", "responder*")),
    Concept("dissociation", "dissociation", (r"\bdissociat\w*",), kind="outcome",
            terms=("dissociat*",)),
    Concept("cognition", "cognition", (r"\bcognit\w*", r"\bmemory\b"), ("Cognition",),
            kind="outcome", terms=("cognit*", "memory")),
    Concept("neuroplasticity", "neuroplasticity", (
        r"\bneuroplastic\w*", r"\bsynap\w*", r"\bneurogenesis\b", r"\bbdnf\b",
        r"\bneural connections\b", r"\brewir\w*",
    ), ("Neuronal Plasticity",), kind="outcome", terms=("plasticity", "synap*", "BDNF")),
    Concept("glutamate", "glutamate / NMDA", (r"\bglutamat\w*", r"\bnmda\b"),
            ("Receptors, N-Methyl-D-Aspartate",), kind="outcome",
            terms=("glutamat*", "NMDA")),
    Concept("regulatory_approval", "regulatory approval", (r"\bfda\b", r"\bapprov\w*"),
            ("United States Food and Drug Administration", "Drug Approval"), kind="outcome",
            terms=("FDA",)),
)

_LOCK = threading.RLock()
_ACTIVE: dict[str, tuple[Concept, ...]] = {
    "condition": _CONDITIONS, "intervention": _INTERVENTIONS, "route": _ROUTES,
    "population": _POPULATIONS, "outcome": _OUTCOMES,
}
_VERSION = [0]


def concepts(kind: str) -> tuple[Concept, ...]:
    """The entries of one kind, in vocabulary order (core entries, then added areas).

    Raises
    ------
    ValueError
        ``kind`` is not one of `KINDS`.
    """
    if kind not in _ACTIVE:
        raise ValueError(f"unknown concept kind {kind!r}; expected one of {KINDS}")
    return _ACTIVE[kind]


def version() -> int:
    """A counter that changes whenever entries are added or removed (for caches)."""
    return _VERSION[0]


def _check(new: Sequence[Concept]) -> None:
    for concept in new:
        if concept.kind not in _ACTIVE:
            raise ValueError(f"{concept.key}: unknown kind {concept.kind!r}")
        if any(c.key == concept.key for c in _ACTIVE[concept.kind]):
            raise ValueError(f"{concept.kind} {concept.key!r} is already in the vocabulary")
        for pattern in concept.patterns:
            re.compile(pattern)


def register(*new: Concept) -> None:
    """Add entries for good (a new therapy area).

    Raises
    ------
    ValueError
        An entry's kind is unknown, its key is taken, or a pattern does not compile.
    """
    with _LOCK:
        _check(new)
        for concept in new:
            _ACTIVE[concept.kind] = (*_ACTIVE[concept.kind], concept)
        _VERSION[0] += 1


@contextmanager
def extended(*new: Concept) -> Iterator[None]:
    """Add entries for the length of a ``with`` block, then restore the vocabulary."""
    with _LOCK:
        saved = dict(_ACTIVE)
        register(*new)
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE.clear()
            _ACTIVE.update(saved)
            _VERSION[0] += 1


@lru_cache(maxsize=1024)
def _compiled(concept: Concept) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in concept.patterns)


def find(kind: str, text: str) -> set[str]:
    """Keys of the entries of ``kind`` that ``text`` names.

    A match inside a longer match of another entry does not count, so "bipolar
    depression" names bipolar depression, not also depression, and "S-ketamine" names
    esketamine, not also ketamine.
    """
    return set(occurrences(kind, text))


def mentions(kind: str, text: str) -> list[tuple[int, int, str]]:
    """Every ``(start, end, key)`` where ``text`` names an entry of ``kind``, in order.

    A match inside a longer match of another entry does not count (see `find`). Results
    are cached per vocabulary version: linking reads the same titles and abstracts for
    every claim they are a candidate for.
    """
    if kind not in _ACTIVE:
        raise ValueError(f"unknown concept kind {kind!r}; expected one of {KINDS}")
    return list(_mentions(kind, text, version()))


@lru_cache(maxsize=8192)
def _mentions(kind: str, text: str, _version: int) -> tuple[tuple[int, int, str], ...]:
    hits: set[tuple[int, int, str]] = set()
    for concept in concepts(kind):
        for pattern in _compiled(concept):
            hits.update((m.start(), m.end(), concept.key) for m in pattern.finditer(text))
    # One sweep (hits by start, longest first): a hit is inside the furthest-reaching
    # earlier hit when that one ends at or after it and is longer (or of the same entry),
    # so long texts stay linear in their number of hits.
    kept: list[tuple[int, int, str]] = []
    reach: tuple[int, int, str] | None = None  # (end, start, key)
    for start, end, key in sorted(hits, key=lambda h: (h[0], -h[1], h[2])):
        inside = reach is not None and reach[0] >= end and (
            reach[0] - reach[1] > end - start or reach[2] == key)
        if not inside:
            kept.append((start, end, key))
        if reach is None or end > reach[0]:
            reach = (end, start, key)
    return tuple(kept)


def occurrences(kind: str, text: str) -> dict[str, int]:
    """How often ``text`` names each entry of ``kind`` (nested matches as in `find`)."""
    counts: dict[str, int] = {}
    for _, _, key in mentions(kind, text):
        counts[key] = counts.get(key, 0) + 1
    return counts


def blank(kinds: Iterable[str], text: str) -> str:
    """``text`` with every mention of an entry of ``kinds`` replaced by spaces."""
    chars = list(text)
    for kind in kinds:
        for concept in concepts(kind):
            for pattern in _compiled(concept):
                for m in pattern.finditer(text):
                    chars[m.start():m.end()] = " " * (m.end() - m.start())
    return "".join(chars)


def mesh_name(term: str) -> str:
    """A MeSH entry's descriptor name, casefolded: drops a major-topic ``*`` and qualifiers."""
    return term.split("/", 1)[0].strip().lstrip("*").strip().casefold()


def find_mesh(kind: str, mesh: Iterable[str]) -> set[str]:
    """Keys of the entries of ``kind`` whose MeSH headings occur in ``mesh``."""
    heads = {mesh_name(m) for m in mesh}
    return {c.key for c in concepts(kind) if any(h.casefold() in heads for h in c.mesh)}


def labels(kind: str, keys: Iterable[str]) -> tuple[str, ...]:
    """Labels of ``keys``, in vocabulary order."""
    wanted = set(keys)
    return tuple(c.label for c in concepts(kind) if c.key in wanted)


def get(kind: str, key: str) -> Concept | None:
    """The entry of ``kind`` with ``key``, or None."""
    return next((c for c in concepts(kind) if c.key == key), None)


def ancestors(kind: str, key: str) -> set[str]:
    """Keys of every broader entry of ``key`` (its parent, the parent's parent, ...)."""
    parents = {c.key: c.parent for c in concepts(kind)}
    found: set[str] = set()
    parent = parents.get(key)
    while parent is not None and parent not in found:
        found.add(parent)
        parent = parents.get(parent)
    return found


def substance(key: str) -> str:
    """The substance an intervention is a form of (``esketamine`` → ``ketamine``)."""
    concept = get("intervention", key)
    return concept.form_of if concept is not None and concept.form_of else key


NAMED_KINDS: tuple[str, ...] = ("condition", "intervention", "route", "population")


def named_concepts(text: str) -> dict[str, tuple[str, ...]]:
    """The conditions, interventions, routes and populations a text names, by label.

    Returns
    -------
    dict
        ``{"condition": labels, "intervention": labels, "route": labels,
        "population": labels}``, each in vocabulary order.
    """
    return {kind: labels(kind, find(kind, text)) for kind in NAMED_KINDS}


def keys_for_labels(kind: str, names: Iterable[str]) -> set[str]:
    """The keys of the entries whose labels are ``names``."""
    wanted = set(names)
    return {c.key for c in concepts(kind) if c.label in wanted}


_AGENCY = (r"(?:fda|u\.s\.\s+food\s+and\s+drug\s+administration|food\s+and\s+drug\s+"
           r"administration|ema|european\s+medicines\s+agency|mhra|health\s+canada|tga|dea)")
REGULATORY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("approval", re.compile(
        rf"\b{_AGENCY}\b[^.;:]{{0,80}}?\b(?:approv\w*|clear(?:ed|ance)|authori[sz]\w*"
        rf"|designat\w*)|\b(?:approv\w*|clear(?:ed|ance)|authori[sz]ed)\s+(?:\w+\s+){{0,3}}"
        rf"(?:by|from)\s+(?:the\s+)?{_AGENCY}\b|\b{_AGENCY}[- ](?:approved|cleared)\b"
        r"|\bbreakthrough\s+therapy\b|\b(?:un)?approved\s+(?:for|as|to)\b"
        r"|\bapproval\s+(?:for|of)\b",
        re.IGNORECASE)),
    ("off-label use", re.compile(r"\boff[- ]label\b", re.IGNORECASE)),
    ("scheduling", re.compile(
        r"\bschedule\s+(?:i{1,3}|iv|v|[1-5])\b|\bcontrolled\s+substances?\b"
        r"|\bprescription[- ]only\b", re.IGNORECASE)),
    ("label warning", re.compile(
        r"\b(?:black[- ]box|boxed)\s+warnings?\b|(?-i:\bREMS\b)|\brisk\s+evaluation\s+and"
        r"\s+mitigation\b|\bprescribing\s+information\b|\bdrug\s+label\w*",
        re.IGNORECASE)),
)
"""Statements only a regulator's record can substantiate: approvals, off-label status,
scheduling, label warnings. Each entry names the kind of statement."""

NON_CLINICAL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("history", re.compile(
        r"\b(?:originally|initially|first)\s+(?:developed|synthesi[sz]ed|introduced|created|"
        r"discovered)\b|\b(?:developed|synthesi[sz]ed|discovered)\s+in\s+(?:the\s+)?"
        r"(?:19|20)\d\d", re.IGNORECASE)),
    ("prevalence", re.compile(
        r"\bmost\s+common\s+(?:mental|psychiatric|health|conditions?|disorders?)\b"
        r"|\bprevalen\w*|\baffect(?:s|ing)?\s+(?:over\s+|more\s+than\s+|about\s+|nearly\s+"
        r"|an\s+estimated\s+)?\d[\d,.]*\s*(?:million|billion)", re.IGNORECASE)),
    ("cost or coverage", re.compile(
        r"\binsurance\b|\bcovered\s+by\b|\bout[- ]of[- ]pocket\b|\breimburs\w+|\bcosts?\b"
        r"|\bpric(?:e|es|ing)\b|\$\s?\d", re.IGNORECASE)),
)
"""Statements a clinical study cannot substantiate either: history, prevalence, cost."""

GENERIC_CONDITION_RE = re.compile(
    r"\bmental\s+(?:health|illness(?:es)?|wellness)\b|\bmood(?:\s+(?:disorders?|regulation))?"
    r"\b|\bpsychiatric\s+(?:conditions?|disorders?|illness(?:es)?)\b",
    re.IGNORECASE,
)
"""Words that stand for "the conditions this article is about" rather than naming one."""


# ---------------------------------------------------------------------------------------
# Words
# ---------------------------------------------------------------------------------------

STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    either et al etc few for from further had has have having he her here hers herself him
    himself his how i ie eg if in into is it its itself just may me might more most must my
    myself no nor not now of off on once only or other our ours ourselves out over own per
    s same she should so some such than that the their theirs them themselves then there
    these they this those through thus to too under until up upon very via vs was we were what
    when where whether which while who whom whose why will with within without would yet
    you your yours
    """.split()
)
"""English function words: never index or search terms on their own."""

GENERIC_WORDS: frozenset[str] = frozenset(
    """
    patient patients people person persons individual individuals adult adults many most
    much new novel significant significantly treatment treatments therapy therapies
    therapeutic treat treats treated treating clinic clinics clinical study studies research
    show shows shown showed help helps helped effective effectively effectiveness efficacy
    effect effects relief relieve relieves relieved symptom symptoms improve improves
    improved improvement results result work works proven proof evidence high higher low
    lower rate rates percent hour hours day days week weeks minute minutes time times can
    could make makes made use used using like well better best good great life lives provide
    provides offer offers option options condition conditions disorder disorders disease
    diseases medication medications medical care health drug drugs dose doses level levels
    increase increases decrease decreases reduce reduces reduced associated association
    compared versus cause causes caused lead leads linked link links report reports reported
    case cases outcome outcomes
    """.split()
)
"""Words every health text shares: a match on them alone says nothing about fit, and
they do not narrow a PubMed search."""


_STEMMER = Stemmer.Stemmer("english")
_STEMMER_LOCK = threading.Lock()  # a PyStemmer object must not be shared across threads


@lru_cache(maxsize=200_000)
def stem(word: str, *, fixed_point: bool = False) -> str:
    """The English (Snowball) stem of one lower-case word; the project's only stemmer.

    Parameters
    ----------
    word : str
        A lower-case word.
    fixed_point : bool
        Stem repeatedly until the stem stops changing, so that stemming a stem is a
        no-op (keys built from stems stay idempotent).
    """
    with _STEMMER_LOCK:
        current = str(_STEMMER.stemWord(word))
        if fixed_point:
            for _ in range(4):
                again = str(_STEMMER.stemWord(current))
                if again == current:
                    break
                current = again
    return current


# ---------------------------------------------------------------------------------------
# Identifiers
# ---------------------------------------------------------------------------------------

DOI_CORE = r"10\.\d{4,9}/"
"""The fixed start of every DOI: ``10.`` and a registrant code of 4-9 digits, then ``/``."""
DOI_RE = re.compile(DOI_CORE + r"\S+")
"""A DOI as it stands in a URL or an identifier list (suffix up to white space)."""
DOI_IN_TEXT_RE = re.compile(
    r"(?:\bdoi\s*:?\s*|\b)(" + DOI_CORE + r"[^\s<>\"'\u201c\u201d\u2018\u2019]+)",
    re.IGNORECASE,
)
"""A DOI in running text, with an optional ``doi:`` label; group 1 is the DOI."""
DOI_BATCH_SAFE_RE = re.compile(DOI_CORE + r"[-._;()/:A-Za-z0-9]+")
"""A DOI made only of characters that are safe inside a batched PubMed [AID] query
(Crossref's pattern for "ordinary" DOIs, which matches the vast majority)."""
PMID_IN_TEXT_RE = re.compile(r"\bPMID\s*:?\s*(\d{1,9})\b", re.IGNORECASE)
"""``PMID: 123`` in running text; group 1 is the PMID."""
PMCID_RE = re.compile(r"\b(PMC\d{4,9})\b", re.IGNORECASE)
"""A PubMed Central identifier; group 1 is the PMCID."""


# ---------------------------------------------------------------------------------------
# Designs, levels, certainty, stances, flags
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
"""Every study design, strongest first."""

EVIDENCE_LEVELS: dict[str, str] = {
    "1a": "systematic review or meta-analysis including randomised trials",
    "1b": "randomised controlled trial",
    "2a": "systematic review or meta-analysis of non-randomised or unstated designs",
    "2b": "cohort study or controlled non-randomised trial",
    "3": "case-control or other observational study",
    "4": "case series (including single-arm and uncontrolled before-after studies) or "
         "case report",
    "5": "expert opinion: guideline, narrative review, editorial, comment, letter",
    "6": "animal or in-vitro research (mechanism)",
    "unknown": "design not shown by the record",
}
"""Evidence levels, strongest first (Oxford CEBM style, with 6 for non-human work)."""

CERTAINTY: tuple[str, ...] = ("high", "moderate", "low", "very_low")
"""GRADE certainty levels, strongest first."""

STANCES: tuple[str, ...] = ("supports", "partially_supports", "contradicts",
                            "does_not_address")
"""A reviewer's reading of what a study says about a claim."""

RELEVANCE: tuple[str, ...] = ("high", "medium", "low", "none")
"""How relevant a reviewer judges a linked study to the claim, strongest first."""

GRADE_DOMAINS: tuple[str, ...] = (
    "risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias",
)
"""The five GRADE domains a certainty can be rated down on."""

INDIRECTNESS_DIMENSIONS: tuple[str, ...] = ("condition", "intervention", "route",
                                            "population")
"""The ways a study's question can differ from a claim's."""


STUDY_FLAGS: dict[str, str] = {
    "retracted": "the study has been retracted: it never counts as evidence",
    "retraction_notice": "the record is a retraction notice, not a study",
    "expression_of_concern": "an expression of concern has been published about the study",
    "corrected_and_republished": "the study was corrected and republished: read the "
                                 "republished version",
    "erratum": "an erratum to the study has been published: read it with the study",
    "deleted": "PubMed deleted the record",
    "not_english": "not published in English",
    "preprint": "a preprint: not peer reviewed",
}
"""Warnings about a study record, in the order they are reported."""

CLAIM_FLAGS: dict[str, str] = {
    "no_fitting_citation": "none of the studies its article cites fits this claim",
    "needs_regulatory_source": "a regulatory statement (approval, scheduling, label): no "
                               "clinical study can substantiate it; attach the drug label "
                               "or agency decision",
    "retracted_evidence": "a linked study is retracted",
    "indirect_evidence": "the best fitting evidence differs from the claim in condition, "
                         "intervention, route or population",
    "no_evidence": "no fitting study in the database bears on this claim",
    "new_evidence": "surveillance linked a new fitting systematic review, meta-analysis or "
                    "randomised trial that no reviewer has read yet",
}
"""Flags about a claim's own evidence, in the order they are reported."""

REOPEN_REASONS: dict[str, str] = {
    "retracted": "a study its final verdict rests on has been retracted",
    "expression_of_concern": "an expression of concern has been published about a study "
                             "its final verdict rests on",
    "erratum": "an erratum or correction to a study its final verdict rests on has been "
               "published",
    "deleted": "PubMed deleted a study its final verdict rests on",
    "changed": "the title or abstract of a study its final verdict rests on changed",
    "expired": "the final verdict passed its review-by date",
}
"""Why surveillance sends a decided claim back to review (``claim.reopen_reasons``), in
the order they are reported. All but ``expired`` are changes to a study
(``STUDY_CHANGES``); ``ALERT_CHANGES`` need attention on their own."""

REOPEN_REASON_LABELS: dict[str, str] = {
    "retracted": "retracted",
    "expression_of_concern": "expression of concern",
    "erratum": "erratum",
    "deleted": "deleted from PubMed",
    "changed": "title or abstract changed",
    "expired": "review-by date passed",
}
"""A few words per ``REOPEN_REASONS`` code, for tables and chart legends."""

STUDY_CHANGES: tuple[str, ...] = ("retracted", "expression_of_concern", "erratum", "deleted",
                                  "changed")
"""The changes to a linked PubMed record that surveillance reports (a subset of
``REOPEN_REASONS``)."""

ALERT_CHANGES: tuple[str, ...] = ("retracted", "expression_of_concern")
"""Study changes that need attention whether or not a decided claim rests on the study."""

CITATION_FLAGS: dict[str, str] = {
    "addresses_no_claim": "cited but does not address any claim of its article",
}
"""Flags about an article's citation (also counted on the article's scorecard)."""

SOURCE_KINDS: dict[str, str] = {
    "drug_label": "drug label / prescribing information",
    "regulatory_decision": "regulatory decision (approval, scheduling, safety communication)",
    "guideline": "clinical practice guideline",
    "other": "other non-PubMed source",
}
"""Kinds of non-PubMed source a reviewer can attach to a claim."""


def order(values: Iterable[str], vocabulary: Sequence[str] | Mapping[str, str]) -> list[str]:
    """``values`` in the vocabulary's order (unknown values last, in their order)."""
    ranks = {v: i for i, v in enumerate(vocabulary)}
    return sorted(values, key=lambda v: ranks.get(v, len(ranks)))
