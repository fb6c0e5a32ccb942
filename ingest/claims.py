"""Check-worthy claims in an article: sentence spans and categories.

Claims are stored as character offsets into the article text, so everything here keeps
exact offsets: :func:`split_sentences` returns spans, and every
:class:`ClaimCandidate` satisfies ``text[c.start:c.end] == c.text``.

Extraction is rule-based and deterministic. Each sentence is matched against cue
lexicons (one family per category in :data:`CATEGORIES`); the cues that fire are kept
on the candidate, so a reviewer can see why a sentence was taken. Sentences that cannot
carry a checkable claim are dropped first: headings, questions, calls to action, contact
details, statements about the article itself, reference-list entries and
supplement-label disclaimers. Generic advice ("consult your provider"), predictions, pure
promotion ("a beacon of hope") and the provider's own prices are scored down, so they
survive only when they also state a checkable fact.

Beside the domain's cue words, claims of any therapy area are recognised by their form: a
time course ("after three to six months"), an amount or a dosing rhythm, a lab check, a
caution ("not recommended during pregnancy"), an everyday effect verb ("boosts",
"lowers"), the body's workings (cells, hormones, the microbiome), an average or a
multiple, a comparison with "than".

A bare list item ("- Boosts energy", "- Nausea") has no subject and often no cue of its
own: it takes the category of what introduces it, a line ending with ":" or a section
heading whose words name a kind of claim ("Benefits", "How It Works", "Side Effects",
"Conditions We Treat", "What to Expect").

Spans are whole sentences. A sentence that makes two claims ("Unlike SSRIs, which take
weeks, ketamine works within hours") stays one candidate carrying the cues of both: the
sentence is what a reviewer reads and grades, and splitting clauses would cut a
comparison from its subject.

Claims repeated across articles ("relief within hours") are grouped into canonical claims
by :mod:`evidence.library`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from evidence import vocabulary

__all__ = [
    "CATEGORIES",
    "CATEGORY_DESCRIPTIONS",
    "MIN_CHECKWORTHINESS",
    "ClaimCandidate",
    "extract_claims",
    "score_sentence",
    "score_sentences",
    "split_sentences",
]

#: What each claim category covers.
CATEGORY_DESCRIPTIONS: dict[str, str] = {
    "comparison": "against another treatment: SSRIs, traditional antidepressants, anesthetics",
    "onset": "speed of effect: within hours, rapid relief, fast-acting",
    "regulatory": "approval status and history: FDA approved, off-label, esketamine",
    "statistic": "numbers about outcomes or populations: 70% of patients, millions",
    "safety": "side effects, risks, tolerability, addiction, contraindications, monitoring",
    "protocol": "how it is given: routes, doses, session counts and durations",
    "mechanism": "how it works: NMDA, glutamate, BDNF, synapses, neuroplasticity",
    "efficacy": "whether it works: relieves symptoms, improves mood, success rates",
    "indication": "what it is used for: the conditions and patients treated",
    "access": "cost, insurance coverage and availability",
}
#: Claim categories, in the order that breaks ties when a sentence fits several.
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_DESCRIPTIONS)

#: Sentences scoring below this are not claims.
MIN_CHECKWORTHINESS = 0.5


@dataclass(frozen=True)
class ClaimCandidate:
    """A check-worthy sentence of an article.

    Attributes
    ----------
    start, end : int
        Character span in the article text; ``text == article_text[start:end]``.
    text : str
        The sentence, without surrounding whitespace or list markers.
    category : str
        One of :data:`CATEGORIES`.
    checkworthiness : float
        In [0, 1]; how strongly the sentence reads as a checkable factual claim.
    cues : tuple[str, ...]
        The evidence for the score, as ``"category:matched words"`` and, for penalties,
        ``"-reason:matched words"``.
    """

    start: int
    end: int
    text: str
    category: str
    checkworthiness: float
    cues: tuple[str, ...]


# --- sentences ----------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    """
    e.g i.e vs al dr mr mrs ms prof st jr sr inc ltd co corp fig figs approx
    est dept univ vol ed eds pp p ca cf
    u.s u.k u.n a.m p.m ph.d m.d d.o r.n n.p b.a m.a m.s b.s
    """.split()
)
# "etc." and units ("mg", "min") are not listed: they end sentences as often as not, so a
# following capital splits.

_BULLET = re.compile(r"(?:[-*+\u2022\u25cf\u25aa\u25e6\u2013\u2014\u2023\u2043>]|\d{1,2}[.)])\s+")
_BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s+[\"'\u201c\u2018(\[]?[A-Z0-9])")
_ONLY_MARKERS = re.compile(r"[-*+\u2022\u25cf\u25aa\u25e6\u2013\u2014\s\d.)]*")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Split text into sentences, returning exact ``(start, end)`` offsets.

    Every line break ends a sentence (headings, list items and lines without final
    punctuation stand alone); within a line, a sentence ends at ``.``, ``!`` or ``?``
    (and any closing quote or bracket) followed by a space and a capital or digit,
    except after abbreviations ("e.g.", "Dr.", "U.S."), initials and inside decimals.
    Spans exclude surrounding whitespace and leading list markers ("- ", "* ", "• ",
    "1. "); spans of nothing but markers are dropped.

    Parameters
    ----------
    text : str

    Returns
    -------
    list[tuple[int, int]]
        In text order; ``text[start:end]`` is the sentence.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    for line in text.split("\n"):
        line_start = pos
        pos += len(line) + 1
        start = _marker_end(line)
        for match in _BOUNDARY.finditer(line, start):
            if _is_abbreviation(line, match.start()):
                continue
            _add_span(spans, line, line_start, start, match.end())
            start = match.end()
        _add_span(spans, line, line_start, start, len(line))
    return spans


def _marker_end(line: str) -> int:
    """Offset just past a line's leading whitespace and list markers ("- ", "1. ")."""
    end = len(line) - len(line.lstrip())
    while marker := _BULLET.match(line, end):
        end = marker.end()
    return end


def _is_abbreviation(line: str, dot: int) -> bool:
    """Whether the full stop at ``dot`` belongs to an abbreviation or an initial."""
    if line[dot] != ".":
        return False
    word_start = dot
    while word_start > 0 and not line[word_start - 1].isspace() and line[word_start - 1] != "(":
        word_start -= 1
    word = line[word_start:dot].lower().lstrip("\"'\u201c\u2018")
    if word in _ABBREVIATIONS:
        return True
    # A single letter ("J. Smith") or a dotted run ("U.S.A") is an abbreviation.
    return bool(re.fullmatch(r"[a-z]|(?:[a-z]\.)+[a-z]", word))


def _add_span(spans: list[tuple[int, int]], line: str, offset: int, start: int, end: int) -> None:
    piece = line[start:end]
    body = piece.strip()
    if body and not _ONLY_MARKERS.fullmatch(body):
        lead = len(piece) - len(piece.lstrip())
        spans.append((offset + start + lead, offset + start + lead + len(body)))


# --- cue lexicons -------------------------------------------------------------------


_EVIDENCE = "evidence"


@dataclass(frozen=True)
class _Cue:
    category: str
    pattern: re.Pattern[str]
    weight: float


def _cues(category: str, weight: float, *patterns: str) -> list[_Cue]:
    return [_Cue(category, re.compile(p, re.IGNORECASE), weight) for p in patterns]


# Conditions and symptoms: on their own they mark an indication; with an outcome verb
# they make an efficacy claim. Generic ones ("mental health conditions") name no
# condition a reviewer could look up, so they weigh less.
# Named conditions come from the domain vocabulary (`evidence.vocabulary`); these are the
# symptoms and treatment histories a marketing text uses in their place.
_CONDITION = (
    r"\b(?:(?:treatment|therapy)[- ]resistant|anxi\w+|panic|neuropathic|mood disorders?"
    r"|psychiatric|addiction recovery|cravings?"
    r"|obsessions|compulsions|flashbacks|nightmares|rumination|hyperarousal|intrusive thoughts"
    r"|trauma\w*|(?:have not|haven.t|not) (?:responded|found relief)|(?:other |conventional "
    r"|traditional )?(?:treatments|therapies|medications) (?:have )?(?:failed|fall short))\b"
)
_GENERIC_CONDITION = (
    r"\b(?:symptoms?|mood|cognition|motivation|quality of life|mental (?:health|wellness)"
    r"(?: conditions?| disorders?| issues?)?|emotional (?:distress|balance|processing"
    r"|well-being)|well-being)\b"
)
_CONDITION_RE = re.compile(_CONDITION, re.IGNORECASE)
_GENERIC_CONDITION_RE = re.compile(_GENERIC_CONDITION, re.IGNORECASE)
_OUTCOME = (
    r"\b(?:alleviat\w*|reliev\w*|relief|reduc(?:e|es|ed|ing|tion)|improv\w*|treat(?:s|ing|ed)?"
    r"|heal(?:s|ed|ing)?|cur(?:e|es|ed)|remission|respon(?:d|ds|se|ded)|benefi\w+"
    r"|effective\w*|efficacy|efficacious|success\w*|restor\w*|manag(?:e|es|ed|ing)|better"
    r"|lift\w*|break free|overcome|life[- ](?:saving|changing)|help(?:s|ed)?(?: to)?(?: in)?"
    r" \w+)\b"
)
_OUTCOME_RE = re.compile(_OUTCOME, re.IGNORECASE)
_USE = (
    r"\b(?:used (?:for|in|to|when)|use (?:for|in)|option for|(?:treatment|option|alternative)"
    r" (?:for|during)|indicated|reserved for|candidates?|for (?:individuals|patients|people"
    r"|those) (?:with|who|suffering|struggling|experiencing)|(?:individuals|patients|people"
    r"|many) (?:with|who (?:have not|haven.t|suffer))|(?:have not|haven.t|do not|don.t)"
    r" respond\w*|resistant|failed|first[- ]line|in cases)\b"
)
_USE_RE = re.compile(_USE, re.IGNORECASE)
# A sentence that refers back ("This sensation is usually mild") continues the claim of
# the sentence before it.
_ANAPHORA = re.compile(
    r"^(?:this|these|such|it|its|they)\b|\bthese (?:patients|individuals|people|effects)\b",
    re.IGNORECASE,
)

# A comparison claim sets the treatment against a comparator: a contrast ("unlike",
# "faster than", or the comparator's slowness, "take weeks") and a named comparator.
_CONTRAST_CUES: list[_Cue] = [
    *_cues(
        "comparison",
        0.75,
        r"\b(?:unlike|compared (?:to|with)|in contrast to|versus|vs\.?|differently (?:than|from)"
        r"|different from|better than|faster than|superior to|inferior to|outperform\w*"
        r"|(?:more|less) \w+ than)\b",
    ),
    *_cues(
        "comparison", 0.45, r"\b(?:take|takes|taking|took) (?:several |many )?(?:weeks|months)\b"
    ),
]
_COMPARATOR_CUES: list[_Cue] = _cues(
    "comparison",
    0.45,
    r"\b(?:traditional|conventional|standard|typical) (?:oral )?"
    r"(?:antidepressants?|anesthetics?|medications?|treatments?|therapies)\b",
    r"\b(?:ssris?|snris?|antidepressants?|placebo(?![- ]controlled)|ect|electroconvulsive|tms"
    r"|transcranial)\b",
)

# Claims of any therapy area, recognised by their form rather than by topic words: a time
# course, an amount with a unit, a dosing rhythm, a lab check, a caution, an everyday
# effect verb, the body's workings. The domain vocabulary raises confidence elsewhere;
# none of these needs it.
_COUNT = (
    r"(?:\d+(?:\.\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
    r"|fifteen|twenty|thirty|forty|sixty|ninety|a few|several|a couple of)"
)
_AMOUNT = rf"{_COUNT}(?:\s?(?:-|\u2013|to|or)\s?{_COUNT})?"
_PERIOD = r"(?:days?|weeks?|months?|years?)"
_TIME_COURSE = (
    rf"\b(?:within|after|over|by|in) (?:just |about |only |roughly |as little as )?"
    rf"(?:the first (?:few )?|the next |an? |{_AMOUNT} )?{_PERIOD}\b"
    # "over 15 years of experience" is a credential, not a time course.
    r"(?! of (?:\w+ )?experience)"
)
_FORM_CUES: list[_Cue] = [
    *_cues(
        "onset",
        0.85,
        # Someone notices, or results appear, some time after starting.
        r"\b(?:notic\w*|see|sees|seen|feel|feels|felt|appear\w*|develop\w*|reach\w*|begin\w*"
        r"|start\w*|build\w*|kick\w* in|results?)\b[^.;]{0,60}?" + _TIME_COURSE,
        r"\bplateaus?\w*\b",
    ),
    *_cues("onset", 0.7, _TIME_COURSE),
    *_cues("onset", 0.6, rf"\b(?:allow|wait|give it) (?:at least |up to )?{_AMOUNT} {_PERIOD}"),
    *_cues(
        "protocol",
        0.75,
        rf"\b{_AMOUNT}[- ](?:minutes?|hours?|sessions?|infusions?|treatments?|injections?|doses?"
        r"|capsules?|tablets?|pills?|gummies|drops|scoops?|grams?|mg|mcg|ml|iu|cfu|nm)\b",
        r"\b(?:once|twice|three times)[- ](?:a |per )?(?:day|week|month)|\b(?:once|twice)[- ]"
        r"(?:daily|weekly|monthly)\b",
    ),
    *_cues(
        "protocol",
        0.6,
        r"\b(?:daily(?! life| routine)|weekly|monthly|nightly|each (?:morning|night|day"
        r"|evening)|every (?:\w+ )?(?:days?|weeks?|months?|morning|night)|per (?:day|week"
        r"|month))\b",
        # Lab monitoring and the steps of a procedure.
        r"\b(?:blood (?:tests?|work|draws?)|labs|lab tests?|measured|physical exam"
        r"|local anesthesia|ultrasound|injected|collected?|capsules?|procedure)\b",
        r"\b\d+(?:\.\d+)?\s?(?:-|\u2013)\s?\d+(?:\.\d+)? ?nm\b",
    ),
    *_cues(
        "safety",
        0.75,
        # Cautions, whatever the risk they name.
        r"\b(?:not recommended|(?:should|must) not (?:be used|be taken|use|take)|(?:should|must)"
        r" avoid|do not use|boxed warning|black[- ]box|warnings?|interacts? with|interactions"
        r"|can (?:cause|damage"
        r"|strain|harm|lower|irritate|transfer)|may cause|rejection|infections?|pregnan\w*"
        r"|breastfeeding)\b",
    ),
    *_cues(
        "safety",
        0.5,
        # Common complaints: as often a benefit's target ("reduces bloating") as a side effect.
        r"\b(?:bruis\w+|sore(?:ness)?|swelling|redness|irritation|rash\w*|itch\w*|acne"
        r"|bloat\w*|gas|cramp\w*|headaches?|tender\w*|fluid retention|tingling|warmth"
        r"|blood clots?|tumou?rs?)\b",
        r"\b(?:some|a few) (?:people|patients|users|clients|men|women) (?:may )?(?:experience"
        r"|notice|report|develop|get|feel)\b",
    ),
    *_cues(
        "mechanism",
        0.55,
        # The body's workings: what a mechanism claim is about in any therapy area.
        r"\b(?:cells?|cellular|mitochondri\w*|atp|enzymes?|coenzyme|dna|hormones?|microbiome"
        r"|bacteria|gut lining|collagen|tissues?|cartilage|pancreas|insulin|blood sugar"
        r"|metabolism|circulation|immune (?:system|response)|growth factors?|stomach"
        r"|digestive system|bloodstream|receptor agonist|energy currency)\b",
    ),
    *_cues(
        "efficacy",
        0.45,
        # Everyday effect verbs, as a subject's action ("It boosts", "- Burns fat").
        r"\b(?:boost|burn|lower|slow|support|renew|repair|strengthen|sharpen|clear|regrow"
        r"|rebuild|calm|fight|protect|prevent|block|trigger|signal|seal|tighten|curb|drop"
        r"|cut|mimic)(?:s|ed)\b",
        r"\b(?:increas|doubl|promot|stimulat|revers|rais|produc|regenerat|enhanc|activat"
        r"|releas|penetrat|halv)(?:es|ed)\b",
        r"\b(?:nourish|bypass|suppress)(?:es|ed)\b|\b(?:drives|rises|falls|speeds up"
        r"|turns? \w+ into|breaks? down|develop into)\b",
    ),
    *_cues(
        "statistic",
        0.8,
        r"\b(?:an average of|on average|(?:twice|double) (?:the|as)|half (?:the|of|as)"
        r"|by (?:about |roughly |nearly )?half|(?:two|three|four|five|six|seven|eight|nine|ten"
        r"|\d+) times (?:the|as|more|higher|greater|less|lower))\b",
    ),
    *_cues(
        "comparison",
        0.75,
        r"\b(?:more|less|higher|lower|fewer|greater) (?:\S+ ){1,4}than\b",
    ),
    *_cues("regulatory", 0.8, r"\b(?:compounded|compounding|(?:not|been) reviewed by)\b"),
    *_cues(
        "indication",
        0.6,
        r"\b(?:is diagnosed|are diagnosed|you may qualify|eligible if"
        r"|we (?:diagnose and )?treat)\b",
    ),
]

_LEXICON: list[_Cue] = [
    *_CONTRAST_CUES,
    *_COMPARATOR_CUES,
    *_FORM_CUES,
    *_cues(
        "onset",
        0.8,
        r"\bwithin (?:minutes|hours|days|a (?:few )?(?:hours?|days?)|\d+ (?:minutes|hours|days))",
        r"\b(?:rapid(?:ly)?|fast|quick(?:ly)?|immediate(?:ly)?|swift(?:ly)?|speedy)[- ]?"
        r"(?:relief|onset|action|acting|response|results?|effects?|improvements?|symptom relief"
        r"|alleviat\w+|reduc\w+|increase|mood[- ]lifting|antidepressant)",
        r"\bfast[- ]acting\b",
        r"\b(?:rapid|quick) (?:onset|response|action)\b",
        r"\b(?:in as little as|as (?:soon|quickly|fast) as|results in) (?:\d+|a few|one|an?)"
        r" (?:minutes?|hours?|days?)\b",
        r"\b(?:after|in) (?:just )?(?:a few|one|a single|\d+) (?:sessions?|treatments?|"
        r"infusions?|doses?)\b",
    ),
    *_cues(
        "onset",
        0.45,
        r"\b(?:rapid(?:ly)?|quick(?:ly)?)\b",
        r"\b(?:hours|days) of\b",
    ),
    *_cues(
        "regulatory",
        0.8,
        r"\b(?:fda|food and drug administration|ema|mhra)\b",
        r"\b(?:approved|approval|cleared by|off[- ]label|unapproved)\b",
        r"\b(?:esketamine|spravato|schedule (?:i{1,3}|iv|v)|controlled substance"
        r"|prescription[- ]only|dea)\b",
    ),
    *_cues(
        "regulatory",
        0.5,
        r"\b(?:originally|initially|first) (?:developed|used|approved|known|synthesi[sz]ed)\b",
        r"\b(?:clinical trials?|extensive research)\b",
        r"\bin (?:the )?(?:19|20)\d0s\b",
    ),
    *_cues(
        "statistic",
        0.8,
        r"\b\d+(?:\.\d+)?\s?(?:%|percent\b)",
        r"\b(?:\d+|one|two|three|four|five|six|seven|eight|nine) (?:out )?(?:of|in) (?:every )?"
        r"(?:\d+|two|three|four|five|six|seven|eight|nine|ten)\b",
        r"\b(?:success|response|remission|relapse) rates?\b",
        r"\b(?:millions|billions|thousands) of\b",
        r"\bmost common (?:mental|psychiatric|conditions?|disorders?)",
        r"\b(?:prevalen\w+|incidence)\b",
    ),
    *_cues(
        "safety",
        0.75,
        r"\bside[- ]effects?\b",
        r"\b(?:adverse|well[- ]tolerated|tolerab\w+|safe|safer|safely|safety|risks?|harm\w*"
        r"|contraindicat\w*|unsuitable|not suitable)\b",
        r"\b(?:dissociation|dissociat(?:e|es|ed|ing)|dissociative (?:effects?|symptoms|state"
        r"|experiences?)|hallucinat\w+|nausea|vomiting|dizz\w+|lightheaded\w*|sedat\w+"
        r"|disorient\w+|groggy|drows\w+|blood pressure|hypertension|heart rate|psychosis"
        r"|urinary|bladder|cystitis|addict\w*|abuse|dependence|misuse|recreational\w*"
        r"|overdose|toxic\w*|weight gain|sexual dysfunction|fatigue|respiratory)\b",
    ),
    *_cues(
        "safety",
        0.35,
        r"\b(?:temporary|short[- ]lived|subside\w*|wears? off|monitor\w*|supervis\w+|vital signs"
        r"|controlled (?:doses|medical|setting|environment))\b",
    ),
    *_cues(
        "protocol",
        0.75,
        r"\b\d+(?:\.\d+)?(?:\s?(?:-|\u2013|to)\s?\d+(?:\.\d+)?)?[- ]?(?:minutes?|mins?|hours?"
        r"|hrs?|sessions?|infusions?|treatments?|doses?|weeks?|mg(?:/kg)?|milligrams?)\b",
        r"\b(?:intravenous\w*|intramuscular\w*|intranasal\w*|nasal spray|lozenges?"
        r"|sublingual|troches?|subcutaneous\w*|oral(?:ly)?|injections?)\b",
        r"\b(?:low|lower|higher|controlled|sub[- ]?anesthetic|therapeutic) doses?\b",
        r"\b(?:series of|course of|multiple sessions|maintenance (?:sessions|treatments|"
        r"infusions)|booster)\b",
    ),
    *_cues(
        "protocol",
        0.6,
        r"\b(?:absorption|bioavailab\w+|half[- ]life|duration of (?:action|effects?)"
        r"|plasma levels?|metaboli[sz]\w+)\b",
    ),
    *_cues(
        "protocol",
        0.45,
        r"\b(?:infus(?:ed|ion|ions)|administ(?:er|ers|ered|ering|ration of)|delivered|dosage"
        r"|doses?|sessions?)\b",
        # "IV" is as often part of a product's name ("IV ketamine") as a stated route.
        r"\biv\b",
        r"\b(?:under (?:medical|clinical) supervision|clinical setting|specialized clinics"
        r"|medical (?:setting|environment|office))\b",
    ),
    *_cues(
        "mechanism",
        0.75,
        r"\b(?:nmda|ampa|gaba\w*|glutamat\w*|serotonin\w*|dopamin\w*|norepinephrin\w*|bdnf"
        r"|neurotrophic|neuroplastic\w*|plasticity|synap\w+|neurotransmit\w+|receptors?"
        r"|neurons?|neuronal|neurogenesis|default mode network|inflammat\w+|opioid system"
        r"|mtor|antagonis\w+|prefrontal|hippocamp\w+|excitatory|dissociative anesthetic"
        r"|neural (?:connections|pathways|circuits)|brain (?:cells|region|chemistry|healing"
        r"|plasticity)|rewir\w+|brain.s (?:ability|healing))\b",
    ),
    *_cues("mechanism", 0.5, r"\b(?:mechanism|in the brain|pain pathways|the brain)\b"),
    *_cues(
        "access",
        0.6,
        r"\b(?:insurance|coverage|covered by|out[- ]of[- ]pocket|reimburs\w+|afford\w*"
        r"|pric(?:e|es|ing)|costs?|\$\s?\d+)\b",
    ),
    # Appeals to evidence make any claim more checkable but say nothing of its topic.
    *_cues(
        _EVIDENCE,
        0.6,
        r"\b(?:studies|research|researchers|trials?|evidence) (?:have |has )?(?:show\w*"
        r"|suggest\w*|found|discovered|demonstrat\w*|indicat\w*|prov\w*)\b",
        r"\b(?:has|have) (?:been )?(?:shown|demonstrated|proven|found)\b",
        r"\b(?:randomi[sz]ed|placebo[- ]controlled|double[- ]blind|meta[- ]analys[ie]s"
        r"|systematic reviews?|cohort study|published in|according to (?:a|an|the|recent)"
        r"|peer[- ]reviewed)\b",
        r"\bp\s?[<=\u2264]\s?0?\.\d+",
    ),
    *_cues(
        "efficacy",
        0.75,
        r"\b(?:shown|shows|showing) (?:significant |great |considerable )?(?:promise|promising"
        r"|improvement|results|benefits?|efficacy)\b",
    ),
    *_cues(
        "efficacy",
        0.6,
        r"\bpotential (?:as|for) (?:a |an )?(?:\w+ )?(?:antidepressant|treatment|treating)\b",
        r"\b(?:high|proven|remarkable) success\b",
        r"\b(?:under investigation|remains? unclear|not (?:yet )?(?:well )?understood)\b",
        r"\b(?:effects? (?:typically |usually )?last|sustain\w*|long[- ]term (?:benefits|"
        r"effectiveness|relief|improvement))\b",
        r"\bpatients (?:often |commonly )?report\b",
    ),
]

# Sentences that are never claims, whatever else they say.
_DROP: list[tuple[str, re.Pattern[str]]] = [
    (
        "call-to-action",
        re.compile(
            r"\b(?:book (?:a|an|your)|call us|contact us|click here|schedule (?:a|an|your)"
            r"|sign up|get started|start your journey|request an? (?:appointment|consultation)"
            r"|visit (?:us|our)|reach out|learn more|find a convenient time)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "imperative",
        re.compile(
            r"^(?:read|see|check out|download|watch|learn|discover|contact|call|book|schedule"
            r"|visit|click|join|subscribe|share|follow|sign up|find out|ask|talk|speak|consult)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "contact",
        re.compile(
            r"(?:\(?\b\d{3}\)?[-. ]\d{3}[-. ]\d{4}\b|[\w.+-]+@[\w-]+\.\w+|\bhttps?://\S+$)",
            re.IGNORECASE,
        ),
    ),
    (
        # A reference list entry ("Doe A, Roe B. Title." or "Doe A et al. Title.").
        "citation",
        re.compile(
            r"^[A-Z][\w'\u2019-]+ [A-Z]{1,3}(?: et al\.|, [A-Z][\w'\u2019-]+ [A-Z]{1,3}[.,])"
        ),
    ),
    (
        # Supplement-label boilerplate: a legal formula, not a claim about the product.
        "disclaimer",
        re.compile(
            r"\b(?:not (?:been )?evaluated by the (?:fda|food and drug administration)"
            r"|not intended to diagnose)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "about-the-article",
        re.compile(
            r"\b(?:this (?:article|post|blog(?: post)?|guide|page|content)|in this (?:article|"
            r"post|blog|guide|beginner.s guide)|we will (?:explore|discuss|look|cover)|"
            r"let.s (?:delve|dive|explore|look|take)|here.s what|here are|below (?:is|are)"
            r"|read on|written by ai)\b",
            re.IGNORECASE,
        ),
    ),
]

# Score-downs: each applies once, with the matched words kept as a cue.
_PENALTIES: list[tuple[str, float, re.Pattern[str]]] = [
    (
        "advice",
        0.35,
        re.compile(
            r"\b(?:consult(?:ing)?(?: with)? (?:a|an|your|mental|qualified|licensed)"
            r"|work with (?:a|an|your) (?:experienced |qualified |licensed )?(?:healthcare|"
            r"provider|doctor|clinician|professional)"
            r"|it.s (?:essential|helpful|important|useful) to (?:look|understand|know|consider)"
            r"|(?:talk|speak) (?:to|with) (?:a|your)|worth (?:exploring|considering)"
            r"|right (?:fit|option|choice|for you|path)|(?:could|might) be the (?:solution|"
            r"answer)|good fit|consider (?:factors|potential)|(?:should|must) undergo"
            r"|is (?:essential|crucial) to determine|selecting the right|when (?:considering|"
            r"researching)|should be part of|requires careful consideration)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "promotion",
        0.25,
        re.compile(
            r"\b(?:beacon of hope|journey|game[- ]changer|mainstream|revolutioni[sz]\w*"
            r"|significant (?:advancement|milestone|attention|strides)|increasingly popular"
            r"|gaining traction|growing (?:interest|number)|innovative treatments like"
            r"|(?:has )?emerged as a (?:groundbreaking|promising|revolutionary|viable)"
            r"|cutting[- ]edge|state[- ]of[- ]the[- ]art)\b",
            re.IGNORECASE,
        ),
    ),
    (
        # A promise too vague to check ("could make a real difference").
        "vague-promise",
        0.4,
        re.compile(
            r"\b(?:(?:could|can|will) make a (?:real |big |huge )?difference"
            r"|feel like (?:yourself|themselves|himself|herself) again)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "prediction",
        0.3,
        re.compile(
            r"\b(?:is poised to|expected to|will likely|may improve|as research (?:continues|"
            r"progresses)|continue to explore|is (?:also )?focusing on)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "uncertainty",
        0.3,
        re.compile(
            r"\b(?:still being (?:studied|investigated|researched)|(?:topic|subject) of ongoing"
            r" research|remains? (?:unclear|unknown|a topic))\b",
            re.IGNORECASE,
        ),
    ),
    (
        "clinic-process",
        0.3,
        re.compile(
            r"\b(?:follow-up (?:appointments|sessions)|check in with you|you.ll meet"
            r"|review (?:of )?(?:your )?"
            r"medical history|medical history review|adjustments to|comfortabl[ey]"
            r"|before being (?:cleared|allowed)|clinics? (?:offer|focus)|each provider"
            r"|(?:depend|depending|varying based) on (?:the )?individual|a thorough (?:evaluation|"
            r"assessment))\b",
            re.IGNORECASE,
        ),
    ),
]

_PRICE = re.compile(
    r"(?:\$\s?\d|\bsave \d+\s?%|\b\d+\s?% off\b|\bfinancing\b|\bmembers(?:hips?)?\b"
    r"|\bfree (?:shipping|session|consultation))",
    re.IGNORECASE,
)
_COVERAGE = re.compile(
    r"\b(?:insurance|insurers?|covered|coverage|out[- ]of[- ]pocket|hsa|fsa|reimburs\w+)\b",
    re.IGNORECASE,
)
_TERMINAL = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*$")
_VERB_HINT = re.compile(
    r"\b(?:is|are|was|were|be|been|has|have|had|can|may|might|could|will|does|do|did"
    r"|\w+(?:s|ed|es))\b",
    re.IGNORECASE,
)


def score_sentence(
    sentence: str,
    *,
    context: Sequence[str] = (),
    listed: bool = False,
    section: Sequence[str] = (),
) -> tuple[str, float, tuple[str, ...]] | None:
    """Categorise and score one sentence as a claim.

    Parameters
    ----------
    sentence : str
        A sentence as returned by :func:`split_sentences`.
    context : sequence of str
        Categories the sentence inherits: those of the list introduction it completes
        ("The most common side effects include:" for "- Nausea ..."), or of the sentence
        it refers back to ("This sensation is usually mild and temporary.").
    listed : bool
        The sentence is a list item. A bare item under an introduction ("Benefits",
        "Side effects include:") is a fragment without a subject ("Boosts energy",
        "Nausea"): with ``context`` it is a claim in the introduction's category, and
        a short one is not a heading.
    section : sequence of str
        For a list item, the categories named by its section's heading ("Conditions We
        Treat" → indication); the first one is the item's kind unless the item's own
        cue is decisive.

    Returns
    -------
    tuple[str, float, tuple[str, ...]] or None
        ``(category, checkworthiness, cues)``, or ``None`` when the sentence cannot be a
        claim at all (heading, question, call to action, contact details, statement
        about the article, or no cue).
    """
    # A bare list item is a claim fragment, unless it is set in title case ("- BDNF
    # Production"): then it heads the paragraph below it.
    introduced = listed and bool(context or section)
    if _is_heading(sentence) and not (introduced and not _is_title_case(sentence)):
        return None
    if sentence.rstrip("\"'\u201d\u2019)").endswith("?"):
        return None
    if any(pattern.search(sentence) for _, pattern in _DROP):
        return None

    per_category: dict[str, list[float]] = {c: [] for c in (*CATEGORIES, _EVIDENCE)}
    cues: list[tuple[int, str]] = []
    matched: set[_Cue] = set()
    for cue in _LEXICON:
        # One pattern counts once: a word repeated in a sentence is not more evidence.
        match = cue.pattern.search(sentence)
        if match:
            matched.add(cue)
            per_category[cue.category].append(cue.weight)
            label = f"{cue.category}:{_words(match.group(0))}"
            if all(label != seen for _, seen in cues):
                cues.append((match.start(), label))

    condition_matches = sorted(
        [(m.start(), m.end()) for m in _CONDITION_RE.finditer(sentence)]
        + [(a, b) for a, b, _ in vocabulary.mentions("condition", sentence)])
    specific = [_words(sentence[a:b]) for a, b in condition_matches]
    generic = [_words(m.group(0)) for m in _GENERIC_CONDITION_RE.finditer(sentence)]
    # "have not responded" and "found no relief" describe the patients, not an outcome.
    outcome = next(
        (
            m
            for m in _OUTCOME_RE.finditer(sentence)
            if not any(a <= m.start() < b for a, b in condition_matches)
        ),
        None,
    )
    use = _USE_RE.search(sentence)
    condition = specific[0] if specific else generic[0] if generic else ""
    strength = 1.0 if specific else 0.65
    if condition and outcome:
        per_category["efficacy"].append(0.75 * strength)
        cues.append((outcome.start(), f"efficacy:{_words(outcome.group(0))} + {condition}"))
    elif outcome:
        per_category["efficacy"].append(0.35)
        cues.append((outcome.start(), f"efficacy:{_words(outcome.group(0))}"))
    if condition and use:
        per_category["indication"].append(0.75 * strength)
        cues.append((use.start(), f"indication:{_words(use.group(0))} + {condition}"))
    elif len(set(specific)) >= 2:
        # A list of conditions ("GAD, social anxiety and panic disorder") names what
        # the treatment is for.
        per_category["indication"].append(0.5)
        cues.append((-1, f"indication:{', '.join(sorted(set(specific)))}"))
    elif condition:
        per_category["indication"].append(0.35 * strength)
        cues.append((-1, f"indication:{condition}"))
    # Context completes a sentence's own cues; it makes a claim on its own only for a
    # list item, whose introduction is the other half of the sentence ("Side effects:"
    # + "Nausea"). There the introduction also names the item's kind, unless the item's
    # own cue is decisive (a figure, a comparison, a risk).
    has_own_cue = any(per_category.values())
    inherited: dict[str, float] = {}
    if listed:
        # A section heading speaks for its items before a list introduction does
        # ("Conditions We Treat" over "We offer stem cell therapy for:").
        for rank, category in enumerate(section):
            inherited.setdefault(category, _SECTION_WEIGHT if rank == 0 else _CONTEXT_WEIGHT)
    weight = _LIST_ITEM_WEIGHT if listed else _CONTEXT_WEIGHT
    for category in context if has_own_cue or listed else ():
        inherited.setdefault(category, weight)
    for category, inherited_weight in inherited.items():
        if category in per_category:
            per_category[category].append(inherited_weight)
            cues.append((-1, f"{category}:(context)"))

    scores = {c: _noisy_or(w) for c, w in per_category.items() if w}
    if not scores:
        return None
    topical = {c: v for c, v in scores.items() if c != _EVIDENCE}
    # The strongest single cue decides; several weak cues of one kind ("infusion",
    # "session") must not outvote one decisive cue ("FDA-approved").
    strongest = {c: max(w) for c, w in per_category.items() if w and c != _EVIDENCE}
    if matched.intersection(_CONTRAST_CUES) and matched.intersection(_COMPARATOR_CUES):
        category = "comparison"
    elif not strongest:
        # Only an appeal to evidence ("studies have shown"): a claim that something works.
        category = "efficacy"
    else:
        category = max(
            CATEGORIES,
            key=lambda c: (strongest.get(c, 0.0), topical.get(c, 0.0), -CATEGORIES.index(c)),
        )
    # Cues of several categories corroborate each other: a sentence naming a mechanism
    # and an outcome is a stronger claim than either alone.
    combined = _noisy_or([max(w) * 0.6 for w in per_category.values() if w])
    score = max(*scores.values(), combined)

    penalties: list[str] = []
    for reason, amount, pattern in _PENALTIES:
        found = pattern.search(sentence)
        if found:
            score -= amount
            penalties.append(f"-{reason}:{_words(found.group(0))}")
    if sentence.rstrip().endswith(":"):
        # "The most common side effects include:" introduces a list; the items carry
        # the claims.
        score -= 0.3
        penalties.append("-list-introduction")
    if _PRICE.search(sentence) and not _COVERAGE.search(sentence):
        # The provider's own prices and offers are promotion; coverage is a claim.
        score -= 0.5
        penalties.append("-price")
    if not _VERB_HINT.search(sentence) and not introduced:
        score -= 0.2
        penalties.append("-no-verb")
    score = round(min(max(score, 0.0), 1.0), 3)
    ordered = tuple(label for _, label in sorted(cues, key=lambda c: (c[0] < 0, c[0])))
    return category, score, ordered + tuple(penalties)


_CONTEXT_WEIGHT = 0.5
# A list introduction ("Possible side effects include:") outweighs the item's weaker cues
# and ties with its decisive ones.
_LIST_ITEM_WEIGHT = 0.75
# A section heading's first category names its items' kind over a 0.75 cue ("Weight
# gain" under "Symptoms" is an indication), but not over a figure or an approval (0.8).
_SECTION_WEIGHT = 0.78


def extract_claims(text: str) -> list[ClaimCandidate]:
    """Extract the check-worthy claims of an article.

    Parameters
    ----------
    text : str
        The article text (``ParsedArticle.text``).

    Returns
    -------
    list[ClaimCandidate]
        One per claim sentence, in text order, each scoring at least
        :data:`MIN_CHECKWORTHINESS`.
    """
    return [c for c in score_sentences(text) if c.checkworthiness >= MIN_CHECKWORTHINESS]


def score_sentences(text: str) -> list[ClaimCandidate]:
    """Score every sentence that could be a claim, whatever its score.

    :func:`extract_claims` is this list cut at :data:`MIN_CHECKWORTHINESS`; the
    sentences just below the cut are what a reviewer looks at to see what was missed.

    Parameters
    ----------
    text : str
        The article text.

    Returns
    -------
    list[ClaimCandidate]
        In text order; headings, questions, calls to action and the like are absent.
    """
    scored_all: list[ClaimCandidate] = []
    list_context: tuple[str, ...] = ()
    section: tuple[str, ...] = ()
    previous: tuple[str, float] | None = None
    for start, end in split_sentences(text):
        sentence = text[start:end]
        line_start = text.rfind("\n", 0, start) + 1
        in_list = bool(text[line_start:start].strip())
        # A bare item: the first sentence after a list marker ("- Boosts energy").
        listed = in_list and _marker_end(text[line_start:start]) == start - line_start
        if _is_section_heading(text, start, end):
            section = _section_categories(sentence)
        if not in_list and not _continues_line(text, line_start, start):
            list_context = ()
        context = list(list_context)
        if previous is not None and previous[1] >= 0.35 and _ANAPHORA.search(sentence):
            context.append(previous[0])
        scored = score_sentence(sentence, context=context, listed=listed, section=section)

        if sentence.rstrip().endswith(":"):
            list_context = _introduced_categories(sentence) or section
        if scored is None:
            previous = None
            continue
        category, score, cues = scored
        previous = (category, score)
        scored_all.append(ClaimCandidate(start, end, sentence, category, score, cues))
    return scored_all


def _continues_line(text: str, line_start: int, start: int) -> bool:
    """Whether the sentence follows another one on the same list-item line."""
    return line_start < start and not text[line_start:start].isspace()


def _introduced_categories(sentence: str) -> tuple[str, ...]:
    """The categories a list introduction hands to its items ("used for:" → indication)."""
    if any(pattern.search(sentence) for _, pattern in _DROP):
        return ()
    found: list[str] = []
    if _USE_RE.search(sentence):
        found.append("indication")
    scored = score_sentence(sentence.rstrip(":") + ".")
    if scored is not None and scored[1] >= 0.35:
        found.append(scored[0])
    return tuple(dict.fromkeys(found))


def _is_section_heading(text: str, start: int, end: int) -> bool:
    """Whether the sentence is a whole line heading a section ("Benefits", "Is It Safe?")."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    if text[line_start:start].strip() or text[end : None if line_end < 0 else line_end].strip():
        return False
    sentence = text[start:end]
    if sentence.endswith(":"):
        return False
    if sentence.endswith("?"):
        return len(sentence.split()) <= _MAX_QUESTION_HEADING_WORDS
    return _is_heading(sentence)


_MAX_QUESTION_HEADING_WORDS = 8

# The words of a section heading that say what kind of claim its bare list items make
# ("Benefits" + "- Boosts energy" is an efficacy claim). A heading naming none of them
# ("Our Most Popular Drips") hands nothing down.
_SECTION_CUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (category, re.compile(pattern, re.IGNORECASE))
    for category, pattern in (
        (
            "safety",
            r"\b(?:side[- ]effects?|risks?|safe(?:ty)?|warnings?|precautions"
            r"|contraindications?|adverse)\b",
        ),
        (
            "indication",
            r"\b(?:symptoms|signs|conditions|what (?:we|it) treats?"
            r"|who (?:is|should|can|may)|uses|used for|indications?|candidates?)\b",
        ),
        ("mechanism", r"\b(?:how (?:it|they|\w+) works?|how does|mechanisms?|the science)\b"),
        ("efficacy", r"\b(?:benefits|results|advantages|what (?:it|\w+) can do)\b"),
        (
            "protocol",
            r"\b(?:what to expect|how (?:is|are) \w+(?: \w+)? (?:given|done|used|taken)"
            r"|procedure|protocol|dosing|dosage|what.s inside|ingredients)\b",
        ),
        ("regulatory", r"\b(?:fda|regulat\w+|approv\w+|legal)\b"),
    )
)


def _section_categories(heading: str) -> tuple[str, ...]:
    """The categories a section heading hands to the bare list items under it."""
    return tuple(category for category, pattern in _SECTION_CUES if pattern.search(heading))


def _words(text: str) -> str:
    return " ".join(text.lower().split())


def _is_heading(sentence: str) -> bool:
    """A line without final punctuation that reads as a title, or a short label."""
    if _TERMINAL.search(sentence):
        return False
    words = sentence.split()
    if sentence.endswith(":"):
        return len(words) <= 6
    if len(words) <= 3:
        return True
    # "Rapid Relief from Symptoms" is a heading; "- Relief often begins within hours",
    # a list item without a full stop, is a sentence.
    return len(words) <= 12 and _capitalised_share(words) >= 0.6


def _is_title_case(sentence: str) -> bool:
    """Whether most of two or more content words start with a capital ("BDNF Production")."""
    words = sentence.split()
    return len(_content_words(words)) >= 2 and _capitalised_share(words) >= 0.6


def _content_words(words: Sequence[str]) -> list[str]:
    return [w for w in words if w[0].isalpha() and w.lower() not in _TITLE_SMALL_WORDS]


def _capitalised_share(words: Sequence[str]) -> float:
    content = _content_words(words)
    return sum(w[0].isupper() for w in content) / len(content) if content else 0.0


_TITLE_SMALL_WORDS = frozenset(
    "a an the of for and or nor but in on to with at by from as vs into per via".split()
)


def _noisy_or(weights: Sequence[float]) -> float:
    result = 1.0
    for weight in weights:
        result *= 1.0 - weight
    return 1.0 - result
