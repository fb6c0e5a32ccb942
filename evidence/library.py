"""The claim library: canonical claims, the keys they are matched by, and grouping.

The same claim repeated across articles ("relief within hours, while antidepressants take
weeks") is graded once, as a *canonical claim*. This module decides which canonical claim a
new claim joins.

Keys
    :func:`claim_key` reduces a claim to the concepts it asserts: places, brands and hedges
    removed, synonyms folded ("fast-acting", "quickly" → rapid; "SSRIs" → antidepressant;
    "have not responded" → resistant), stop words dropped, words stemmed. A claim that names
    no therapy takes its article's (``subjects``): in a ketamine clinic's post, "this
    treatment works within hours" is about ketamine. The canonical claim stores its key as
    text (:func:`canonical_statement`), so matching never re-reads the library's sentences.

Rules
    :func:`merge_blockers` names what keeps two claims apart however many words they share:
    different therapies, conditions that do not overlap, numbers that do not agree, negation
    on one side only, opposite directions. :func:`lexical_similarity` is a weighted Dice
    coefficient over key tokens, zero when a blocker applies.

Meaning
    With the ``[semantic]`` extra installed (and ``CLAIM_GROUP_SEMANTIC`` on), claims are also
    compared by the cosine of their sentence embeddings (all-MiniLM-L6-v2, bundled), mixed
    with the lexical score (:data:`SEMANTIC_WEIGHT`); the blockers still apply.

Scale
    :class:`LibraryIndex` keeps an inverted index from informative key tokens to canonical
    claims, so a claim is scored against the few canonical claims that share a token with
    it, not the whole library. A canonical claim is scored by the mean over its first
    :data:`MAX_MEMBERS` members, so one member's wording does not decide for the group.
    Very common tokens are skipped when rarer ones exist, and at
    most :data:`MAX_CANDIDATES` candidates are scored. ``assign_canonical`` keeps one index
    per database in the process and reads only the canonical claims added since its last
    call, so the time to group an article stays flat as the library grows.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlmodel import Session, col, func, select

from evidence import audit, vocabulary
from evidence.config import Settings, get_settings
from evidence.models import CanonicalClaim, Claim

__all__ = [
    "CROSS_CATEGORY_WEIGHT",
    "FRAME_WEIGHT",
    "MAX_CANDIDATES",
    "MAX_MEMBERS",
    "SEMANTIC_WEIGHT",
    "UNFRAMED_AGREEMENT",
    "ClaimGroup",
    "ClaimKey",
    "Encoder",
    "GroupingRule",
    "LibraryIndex",
    "Match",
    "article_subjects",
    "assign_canonical",
    "canonical_statement",
    "comparator_tokens",
    "condition_tokens",
    "claim_key",
    "claim_score",
    "claim_similarity",
    "claim_subjects",
    "frame_similarity",
    "group_claims",
    "grouping_rule",
    "lexical_similarity",
    "merge_blockers",
    "new_canonical",
    "regroup_score",
    "sentence_encoder",
    "therapy_tokens",
]

Vector = npt.NDArray[np.float32]
Encoder = Callable[[Sequence[str]], Vector]
"""Turns sentences into unit-length embeddings, one row per sentence."""

#: Weight of the embedding cosine in the semantic score (the lexical score gets the rest),
#: which can group a claim whose lexical score falls short of the lexical threshold.
#: The cosine carries paraphrase ("fast-acting" / "works within hours"); the lexical score
#: carries the concepts the blockers and folds were written for. On the seed annotation a
#: cosine-only score groups worse than the lexical one (F1 0.23 against 0.41): in a corpus
#: where every claim is about one drug, embeddings see mostly the shared topic. Since
#: groups are scored over their members, the mixed score adds no pair on the seeds at the
#: default thresholds (tuned there); it is kept for paraphrases the keys miss.
SEMANTIC_WEIGHT = 0.5
#: Weight of :func:`frame_similarity` added to the lexical score. Paraphrases of one
#: assertion ("rapid relief" / "fast-acting alternative") share their frame and little
#: wording; the weight lets a full frame agreement carry a claim most of the way, so
#: some shared wording is still needed.
FRAME_WEIGHT = 0.5
#: Fraction of the score two claims of different categories keep: using a drug for a
#: condition and its working there share their wording but are different assertions, and
#: only near-verbatim claims filed under two categories still meet the threshold.
CROSS_CATEGORY_WEIGHT = 0.8
#: Frame agreement of two claims of one category that name no outcome, comparator or
#: number but the same conditions (efficacy in PTSD, worded two ways).
UNFRAMED_AGREEMENT = 0.5
#: At most this many canonical claims are scored for one claim (those sharing the most
#: informative tokens with it): the cap that keeps grouping time flat.
MAX_CANDIDATES = 60
#: At most this many members of a canonical claim (its first member included) are indexed
#: and compared with a new claim: a group is matched by the mean of its members' scores,
#: so one member's wording does not decide for the group, and the cap keeps the cost of a
#: comparison bounded however large a group grows.
MAX_MEMBERS = 8
#: A token in more canonical claims than this is too common to find candidates by, when
#: the claim has rarer tokens (its score still counts it).
MAX_POSTING = 400

# --- keys ----------------------------------------------------------------------------


# Places and brands are where a claim is sold, not what it says.
_PLACES = re.compile(
    r"\b(?i:in|near|at|across|throughout|around) (?i:cities like |areas like |the (?:city|state"
    r"|area) of )?(?:[A-Z][A-Za-z.'-]*|NYC|LA|DC)(?:(?:,? | and )[A-Z][A-Za-z.'-]*)*",
)
_LOCAL = re.compile(
    r"\b(?i:our|my) (?:[A-Z][\w'-]* )*(?i:clinics?|centers?|centres?|practice|team|providers?"
    r"|doctors?|staff|office)(?: (?i:in) [A-Z]\w+)?\b",
)
_BRANDS = re.compile(
    r"\b(?:(?i:at|from|with|by) )?(?:[A-Z][\w'&-]* )+(?:Centers?|Centres?|Clinics?|Institute"
    r"|Wellness|Group|Associates|Partners|LLC|Inc\.?|Spa)\b",
)
# Capitalised words that are content, not places or brands, when a place rule sees them.
_DOMAIN_CAPITALS = frozenset(
    """
    ketamine esketamine spravato ptsd ocd mdd trd gad crps fda iv im nmda ampa bdnf gaba
    ssri ssris snri snris dmn treatment therapy infusion infusions depression anxiety
    bipolar chronic major post-traumatic obsessive-compulsive addition semaglutide
    tirzepatide ozempic wegovy mounjaro psilocybin mdma ect tms
    """.split()
)

# Therapies and conditions come from the domain vocabulary (`evidence.vocabulary`): each
# mention becomes one placeholder word that survives the folding below and becomes one
# token. Claims about different therapies (or conditions that do not overlap) are
# different claims; comparators ("SSRIs", "antidepressants") fold to one comparator word.
_THERAPY_MARK = "zzther"
_CONDITION_MARK = "zzcond"
_THERAPY_WORDS = re.compile(
    rf"(?:\b(?:iv|intravenous|im|intramuscular)\s+)?\b{_THERAPY_MARK}(\w+)\b"
    r"(?:[- ]assisted)?(?:\s+(?:infusions?|therapy|therapies|treatments?|injections?))?",
    re.IGNORECASE,
)


_RESISTANCE_WORDS = re.compile(r"resist|refractor|respon|relief|fail|fall\w* short",
                               re.IGNORECASE)


def _fold_vocabulary(text: str) -> str:
    """``text`` with therapy and condition mentions replaced by placeholder words."""
    spans: list[tuple[int, int, str]] = []
    for start, end, key in vocabulary.mentions("intervention", text):
        concept = vocabulary.get("intervention", key)
        word = (f" {concept.comparator} " if concept and concept.comparator
                else f" {_THERAPY_MARK}{_token_word(key)} ")
        spans.append((start, end, word))
    for start, end, key in vocabulary.mentions("condition", text):
        words = [_token_word(a) for a in sorted(_broader(key))] + [_token_word(key)]
        folded = " " + " ".join(f"{_CONDITION_MARK}{w}" for w in words) + " "
        # Treatment resistance, however the mention phrases it, is one word of the frame.
        if _RESISTANCE_WORDS.search(text[start:end]):
            folded += "resistant "
        spans.append((start, end, folded))
    out: list[str] = []
    pos = 0
    for start, end, word in sorted(spans):
        if start < pos:
            continue  # overlapping mentions of two kinds: the first wins
        out += [text[pos:start], word]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _token_word(key: str) -> str:
    return key.replace("_", "").casefold()


def _broader(key: str) -> set[str]:
    """Broader conditions a claim about ``key`` is also about (not across ``separate``)."""
    concept = vocabulary.get("condition", key)
    if concept is None or concept.separate:
        return set()
    return vocabulary.ancestors("condition", key)


@lru_cache(maxsize=8)
def _named_tokens(version: int) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    therapies = frozenset(_stem(_token_word(c.key)) for c in vocabulary.concepts("intervention")
                          if not c.comparator)
    conditions = frozenset(_stem(_token_word(c.key)) for c in vocabulary.concepts("condition"))
    comparators = frozenset(_stem(c.comparator) for c in vocabulary.concepts("intervention")
                            if c.comparator)
    return therapies, conditions, comparators


def therapy_tokens() -> frozenset[str]:
    """Key tokens that name a therapy (one per vocabulary intervention, comparators aside)."""
    return _named_tokens(vocabulary.version())[0]


def condition_tokens() -> frozenset[str]:
    """Key tokens that name a condition (one per vocabulary condition)."""
    return _named_tokens(vocabulary.version())[1]


def comparator_tokens() -> frozenset[str]:
    """Key tokens that name a comparator ("antidepressant": SSRIs, antidepressants ...)."""
    return _named_tokens(vocabulary.version())[2]


def _in_minutes(match: re.Match[str]) -> str:
    return f" {int(match.group(1)) * 60} minutes "


_Replacement = str | Callable[[re.Match[str]], str]
# Words and phrases folded to one concept token before stemming (order matters: longer
# phrases first). Non-response folds before negation is read, so "have not responded"
# is treatment resistance, not a negated claim.
_PRE_POLARITY_RULES: list[tuple[str, _Replacement]] = [
    (r"\b(?:have not|haven't|haven\u2019t|had not|do not|don't|don\u2019t|did not|not)"
     r" (?:\w+ ){0,1}(?:responded|respond|found relief|benefited)\b", " resistant "),
    (r"\b(?:when |where )?(?:other |conventional |traditional |standard )?(?:pain management"
     r" )?(?:treatments|therapies|medications|strategies|approaches)(?: have)? (?:failed"
     r"|fall short|struggle)\b", " resistant "),
    (r"\b(?:treatment|therapy)[- ]resistant\b", " resistant "),
    # "Not a first-line treatment" says it is kept for when others have failed.
    (r"\bnot (?:a |the )?first[- ]line\b", " resistant "),
    # Durations in one unit, so "1-hour" and "60 minutes" are the same number.
    (r"\b(\d+)\s?[-\u2013]?\s?(?:hours?|hrs?)\b", _in_minutes),
    (r"(\d)\s?[-\u2013]\s?(?=\w)", r"\1 "),
    (r"(\d)\s?(?:%|percent\b)", r"\1 percent"),
]  # fmt: skip
_PRE_POLARITY = [(re.compile(p, re.IGNORECASE), r) for p, r in _PRE_POLARITY_RULES]
_SYNONYMS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.IGNORECASE), r)
    for p, r in [
        # "The treatment" names no therapy: the article's subject stands in for it.
        (r"\b(?:the|this|its) (?:treatment|therapy|medication|drug|approach)\b", " "),
        # The comparator's slowness, however phrased, is one concept.
        (r"\b(?:can |may |often |typically )?(?:take|takes|taking|took) (?:several |many )?"
         r"(?:weeks|months)(?: or (?:even )?months)?(?: to (?:show|work|take effect|build up)"
         r"(?: effects?| effectiveness| in the system)?)?", " weeks "),
        (r"\b(?:compared to|compared with|versus|vs\.?) (?:the )?weeks\b", " weeks "),
        (r"\b(?:it )?takes? for\b", " "),
        # "Within hours" and "rapid" make the same claim about speed.
        (r"\bwithin (?:a few |several )?hours(?: or days)?\b|\bin hours\b|\bhours or days\b"
         r"|\bin as little as (?:\d+|a few) hours\b", " rapid "),
        # Ketamine's own antidepressant effect is not the comparator drugs.
        (r"\bantidepressant (?:effects?|properties|action|response)\b", " antidepressanteffect "),
        (r"\b(?:selective serotonin reuptake inhibitors|ssris?|snris?|antidepressants?)\b",
         " antidepressant "),
        (r"\b(?:traditional|conventional|standard|typical|oral|other)\s+(?=antidepressant)",
         " "),
        (r"\bfast[- ]acting\b|\bquick(?:ly)?\b|\bswift(?:ly)?\b|\bimmediate(?:ly)?\b"
         r"|\bspeedy\b|\brapid(?:ly)?\b", " rapid "),
        (r"\breduc\w* (?:the )?(?:symptoms?|severity)\b", " relief symptom "),
        (r"\b(?:alleviat\w*|reliev\w*|relief|eas(?:e|es|ing)|lift\w*|feel(?:ing)? better"
         r"|improvements?|results)\b", " relief "),
        (r"\b(?:well[- ]tolerated|safe|safer|safety)\b", " safe "),
        (r"\bside[- ]effects?\b|\badverse (?:effects?|events?|reactions?)\b", " sideeffect "),
        (r"\bneuro[- ]?plasticity\b|\bbrain plasticity\b", " neuroplasticity "),
        (r"\bsynaptogenesis\b|\bnew synapses\b|\bnew neural connections\b", " synapse "),
        (r"\bnmda receptors?\b", " nmda "),
        (r"\bfood and drug administration\b", " fda "),
        (r"\bmins?\b", " minutes "),
    ]
]  # fmt: skip
_HEDGES = re.compile(
    r"\b(?:may|might|could|can|often|typically|usually|generally|sometimes|potentially"
    r"|possibly|likely|particularly|especially|significant(?:ly)?|substantial(?:ly)?|primarily"
    r"|powerful|dramatic|remarkabl[ey]|also|even|just|certain|various|overall"
    r"|some|many|most|very|highly|(?:appears?|seems?|is believed|are believed|is thought"
    r"|are thought) to|(?:some |many )?(?:studies|research|evidence) (?:have |has )?"
    r"(?:shown|suggests?|show|indicates?|found)(?: that)?|has been shown to|have been shown"
    r" to|it is|there are|there is|in addition(?: to)?)\b",
    re.IGNORECASE,
)
# Beyond English function words: words every claim of the genre uses.
# Negation is a token here (see _POLARITY), never a stop word.
_STOPWORDS = (vocabulary.STOPWORDS - {"not", "no", "nor", "without"}) | frozenset(
    """
    it's is are was were be been being has have had do does did shall should help helps
    helping make makes making provide provides providing offer offers offering patients
    patient individuals people experience experiencing report reporting feel feeling
    noticeable unlike compared instead beyond additionally however recent years ability one
    t
    """.split()
)
# Negation is kept as one token, so "does not cause" and "causes" stay apart; directions
# are folded so that "raises" and "lowers" can be told to contradict.
_POLARITY: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        (r"\bnot only\b", " "),
        (r"\bnot without\b", " with "),
        (r"\b(?:\w+n't|\w+n\u2019t|cannot|never|not|no|without)\b", " not "),
        (r"\b(?:increas\w*|rais(?:e|es|ed|ing)|elevat\w*|boost\w*|enhanc\w*|higher)\b",
         " increase "),
        (r"\b(?:decreas\w*|lower(?:s|ed|ing)?|diminish\w*"
         r"|reduc\w*\b(?! (?:the )?(?:symptoms?|severity)))\b", " decrease "),
    ]
]  # fmt: skip
# Tokens that carry little of what a claim says (in this corpus the subject is nearly
# always the treatment; therapies are compared by the blockers instead).
_WEAK_TOKENS = {
    "symptom": 0.5,
    "treatment": 0.5,
    "therapi": 0.5,
    "effect": 0.3,
    "show": 0.3,
    "work": 0.3,
    "produc": 0.3,
    "mental": 0.5,
    "health": 0.5,
    "condit": 0.5,
    "disord": 0.5,
}
_THERAPY_WEIGHT = 0.25
# What an outcome concept of the vocabulary was named by ("rapid", "nmda", "synaps",
# "sideeffect") is kept in the key as one marker token per facet ("zzfrapid"), so a
# stored key still says which of its words name the outcome the claim is about.
_FACET_MARK = "zzf"


def _stem(word: str) -> str:
    # Stemming to a fixed point keeps canonical_statement idempotent.
    return vocabulary.stem(word, fixed_point=True)


_INCREASE = _stem("increase")
_DECREASE = _stem("decrease")
_RESISTANT = _stem("resistant")


def _strip_places(text: str) -> str:
    def drop(match: re.Match[str]) -> str:
        words = re.findall(r"[A-Za-z][\w'-]*", match.group(0))[1:]
        if any(w.lower() in _DOMAIN_CAPITALS for w in words):
            return match.group(0)
        return " "

    return _PLACES.sub(drop, _LOCAL.sub(" ", _BRANDS.sub(" ", text)))


def _tokens(text: str) -> list[str]:
    text = _fold_vocabulary(_strip_places(text))
    text = text.lower().replace("\u2019", "'")
    text = _THERAPY_WORDS.sub(lambda m: f" {m.group(1)} ", text)
    text = text.replace(_CONDITION_MARK, "")
    for pattern, replacement in _PRE_POLARITY:
        text = pattern.sub(replacement, text)
    for pattern, replacement in _POLARITY:
        text = pattern.sub(replacement, text)
    for pattern, replacement in _SYNONYMS:
        text = pattern.sub(replacement, text)
    text = _HEDGES.sub(" ", text)
    tokens = _stems(text)
    for start, end, _ in vocabulary.mentions("outcome", text):
        facet = "".join(t for t in _stems(text[start:end]) if not t[0].isdigit())
        marker = _stem(_FACET_MARK + re.sub(r"[^a-z0-9]", "", facet))
        if facet and marker not in tokens:
            tokens.append(marker)
    return tokens


def _stems(text: str) -> list[str]:
    tokens: list[str] = []
    for word in re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text):
        if word in _STOPWORDS:
            continue
        stem = _stem(word)
        if stem in _STOPWORDS or (len(stem) < 2 and not stem.isdigit()):
            continue
        if stem not in tokens:
            tokens.append(stem)
    return tokens


@dataclass(frozen=True)
class ClaimKey:
    """What a claim asserts, as key tokens and the features the blockers compare.

    Attributes
    ----------
    tokens : tuple[str, ...]
        Stemmed concept tokens in first-seen order; ``" ".join(tokens)`` is the stored key.
    weights : dict[str, float]
        Each token's weight in :func:`lexical_similarity`.
    therapies, conditions, numbers : frozenset[str]
        The tokens that name therapies, conditions and numbers.
    negated : bool
        The claim is negated ("does not cause").
    direction : int
        +1 for an increase, -1 for a decrease, 0 for neither or both.
    category : str
        The claim's category (``ingest.claims.CATEGORIES``); "" when unknown.
    frame : frozenset[str]
        What the claim asserts something about, beyond its wording: the facets of the
        vocabulary outcomes it names ("rapid", "nmda", "sideeffect"), its comparators,
        treatment resistance and its numbers. Compared by :func:`frame_similarity`.
    """

    tokens: tuple[str, ...]
    weights: dict[str, float] = field(compare=False, hash=False, repr=False)
    therapies: frozenset[str] = field(compare=False, repr=False)
    conditions: frozenset[str] = field(compare=False, repr=False)
    numbers: frozenset[str] = field(compare=False, repr=False)
    negated: bool = field(compare=False, repr=False)
    direction: int = field(compare=False, repr=False)
    category: str = field(default="", compare=False, repr=False)
    frame: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_tokens(cls, tokens: Sequence[str], *, category: str = "") -> ClaimKey:
        """The key of already normalised tokens (a stored key split on spaces)."""
        toks = tuple(tokens)
        therapies, conditions = therapy_tokens(), condition_tokens()
        # Facet markers say which words name an outcome; they add no weight of their own.
        weights = {
            t: 0.0 if t.startswith(_FACET_MARK)
            else _THERAPY_WEIGHT if t in therapies else _WEAK_TOKENS.get(t, 1.0)
            for t in toks
        }
        numbers = frozenset(t for t in toks if t[0].isdigit())
        frame = (
            {t[len(_FACET_MARK):] for t in toks if t.startswith(_FACET_MARK)}
            | (set(toks) & (comparator_tokens() | {_RESISTANT})) | numbers
        )
        return cls(
            tokens=toks,
            weights=weights,
            therapies=frozenset(t for t in toks if t in therapies),
            conditions=frozenset(t for t in toks if t in conditions),
            numbers=numbers,
            negated="not" in weights,
            direction=int(_INCREASE in weights) - int(_DECREASE in weights),
            category=category,
            frame=frozenset(frame),
        )

    @property
    def text(self) -> str:
        """The key as stored on a canonical claim."""
        return " ".join(self.tokens)


def claim_key(text: str, *, subjects: Sequence[str] = (), category: str = "") -> ClaimKey:
    """Reduce a claim sentence (or a stored key) to its :class:`ClaimKey`.

    Parameters
    ----------
    text : str
        A claim sentence, or a key from :func:`canonical_statement`.
    subjects : sequence of str
        Therapy and condition tokens of the claim's article (:func:`article_subjects`):
        its therapies stand in when the claim names no therapy, its conditions when the
        claim names no condition.
    category : str
        The claim's category, compared by :func:`frame_similarity`.

    Returns
    -------
    ClaimKey
    """
    tokens = _tokens(text)
    for named in (therapy_tokens(), condition_tokens()):
        if not any(t in named for t in tokens):
            tokens.extend(s for s in subjects if s in named and s not in tokens)
    return ClaimKey.from_tokens(tokens, category=category)


def canonical_statement(text: str, *, subjects: Sequence[str] = ()) -> str:
    """Reduce a claim to a key form shared by its rewordings.

    Locations ("in NYC"), clinic self-references ("our clinic") and hedges ("may",
    "often", "studies suggest") are removed, synonyms are folded ("fast-acting",
    "quickly" → "rapid"; "SSRIs", "traditional antidepressants" → "antidepressant"),
    stop words dropped and the remaining words stemmed. The result is idempotent:
    ``canonical_statement(canonical_statement(t)) == canonical_statement(t)``.

    Parameters
    ----------
    text : str
        A claim sentence.
    subjects : sequence of str
        Therapy tokens added when the claim names no therapy (see :func:`claim_key`).

    Returns
    -------
    str
        Lower-case stems separated by single spaces.
    """
    return claim_key(text, subjects=subjects).text


def article_subjects(texts: Sequence[str]) -> tuple[str, ...]:
    """What an article is about: the therapies and the conditions its claims name most.

    Parameters
    ----------
    texts : sequence of str
        The article's claim sentences (or its text, as one item).

    Returns
    -------
    tuple[str, ...]
        The therapy tokens tied for the most claims naming them, then the condition
        tokens tied for the most, each sorted; empty if none is named.
    """
    subjects: list[str] = []
    for named in (therapy_tokens(), condition_tokens()):
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(t for t in _tokens(text) if t in named)
        if counts:
            top = max(counts.values())
            subjects += sorted(t for t, n in counts.items() if n == top)
    return tuple(subjects)


# --- rules ---------------------------------------------------------------------------


def merge_blockers(a: ClaimKey, b: ClaimKey) -> list[str]:
    """Why two claims cannot be the same claim, however many words they share.

    Parameters
    ----------
    a, b : ClaimKey

    Returns
    -------
    list[str]
        One reason per rule that applies; empty when the claims may merge:

        - *therapies*: both name therapies and the sets differ ("semaglutide" / "ketamine");
        - *conditions*: both name conditions and none is shared ("PTSD" / "OCD");
        - *numbers*: both give numbers and neither set contains the other ("10%" / "90%");
        - *negation*: one is negated and the other not;
        - *direction*: one says increase and the other decrease.
    """
    reasons: list[str] = []
    if a.therapies and b.therapies and a.therapies != b.therapies:
        reasons.append(f"different therapies: {_names(a.therapies)} / {_names(b.therapies)}")
    if a.conditions and b.conditions and not a.conditions & b.conditions:
        reasons.append(
            f"different conditions: {_names(a.conditions)} / {_names(b.conditions)}"
        )
    if (a.numbers and b.numbers and not a.numbers <= b.numbers
            and not b.numbers <= a.numbers):
        reasons.append(f"different numbers: {_names(a.numbers)} / {_names(b.numbers)}")
    if a.negated != b.negated:
        reasons.append("one is negated, the other is not")
    if a.direction * b.direction < 0:
        reasons.append("opposite directions (increase / decrease)")
    return reasons


def _names(tokens: frozenset[str]) -> str:
    return ", ".join(sorted(tokens))


def lexical_similarity(a: ClaimKey, b: ClaimKey) -> float:
    """How nearly two claims say the same thing, from their keys.

    A weighted Dice coefficient over key tokens: shared concepts count in full; therapy
    names and generic nouns ("symptoms", "treatment") count less. Zero when
    :func:`merge_blockers` gives a reason.

    Parameters
    ----------
    a, b : ClaimKey

    Returns
    -------
    float
        In [0, 1]; 1 for claims with the same key.
    """
    wa, wb = a.weights, b.weights
    if not wa or not wb or merge_blockers(a, b):
        return 0.0
    shared = sum(min(wa[t], wb[t]) for t in wa.keys() & wb.keys())
    return round(2.0 * shared / (sum(wa.values()) + sum(wb.values())), 6)


def frame_similarity(a: ClaimKey, b: ClaimKey) -> float:
    """How nearly two claims make the same assertion, whatever their wording.

    Claims of the same category, direction and negation are compared by their frames
    (:attr:`ClaimKey.frame`): the Dice coefficient of the two sets, so "rapid relief" and
    "fast-acting" (both the *rapid* facet of rapid onset) agree in full, and "rapid
    relief" and "relief within hours, while antidepressants take weeks" (a comparator
    more) in part. Two claims with no frame at all agree by :data:`UNFRAMED_AGREEMENT`
    when they name the same conditions ("reduces PTSD symptoms" / "eases flashbacks in
    PTSD").

    Parameters
    ----------
    a, b : ClaimKey

    Returns
    -------
    float
        In [0, 1]; 0 when the categories differ or either is unknown.
    """
    if not a.category or a.category != b.category:
        return 0.0
    if a.direction != b.direction or a.negated != b.negated:
        return 0.0
    if a.frame and b.frame:
        return round(2.0 * len(a.frame & b.frame) / (len(a.frame) + len(b.frame)), 6)
    if not a.frame and not b.frame and a.conditions and a.conditions == b.conditions:
        return UNFRAMED_AGREEMENT
    return 0.0


def claim_score(a: ClaimKey, b: ClaimKey) -> float:
    """The score a claim joins a canonical claim by, without embeddings.

    :func:`lexical_similarity` plus :data:`FRAME_WEIGHT` times
    :func:`frame_similarity`, at most 1, times :data:`CROSS_CATEGORY_WEIGHT` when both
    categories are known and differ; zero when :func:`merge_blockers` gives a reason.

    Parameters
    ----------
    a, b : ClaimKey

    Returns
    -------
    float
        In [0, 1].
    """
    if not a.weights or not b.weights or merge_blockers(a, b):
        return 0.0
    score = min(1.0, lexical_similarity(a, b) + FRAME_WEIGHT * frame_similarity(a, b))
    if a.category and b.category and a.category != b.category:
        score *= CROSS_CATEGORY_WEIGHT
    return round(score, 6)


def claim_similarity(a: str, b: str, *, category: str = "") -> float:
    """:func:`claim_score` of two claim sentences (or keys) of one category.

    Parameters
    ----------
    a, b : str
    category : str
        The category both claims have; "" compares their wording only.

    Returns
    -------
    float
        In [0, 1].
    """
    return claim_score(claim_key(a, category=category), claim_key(b, category=category))


@dataclass(frozen=True)
class GroupingRule:
    """When a claim joins a canonical claim.

    Attributes
    ----------
    threshold : float
        :func:`claim_score` at or above which a claim joins.
    semantic_threshold : float
        Mixed score (:data:`SEMANTIC_WEIGHT` x cosine + the rest x :func:`claim_score`) at
        or above which a claim joins when its score falls short, when embeddings are used.
    """

    threshold: float
    semantic_threshold: float


def grouping_rule(settings: Settings | None = None) -> GroupingRule:
    """The grouping thresholds in force (``CLAIM_GROUP_THRESHOLD`` and the semantic one)."""
    s = settings or get_settings()
    return GroupingRule(s.claim_group_threshold, s.claim_group_semantic_threshold)


@dataclass(frozen=True)
class Match:
    """The canonical claim a claim joins, with its score and what was compared.

    ``lexical`` is :func:`claim_score` (wording and frame); ``cosine`` the embedding
    cosine when it was needed.
    """

    group: Hashable
    score: float
    lexical: float
    cosine: float | None


# --- the index -----------------------------------------------------------------------


class LibraryIndex:
    """Canonical claims by key token, for finding a new claim's group without a full scan.

    Parameters
    ----------
    rule : GroupingRule
        The thresholds :meth:`best_match` applies.
    """

    def __init__(self, rule: GroupingRule) -> None:
        self.rule = rule
        self._keys: dict[Hashable, ClaimKey] = {}
        self._statements: dict[Hashable, str] = {}
        self._vectors: dict[Hashable, Vector] = {}
        self._members: dict[Hashable, list[tuple[ClaimKey, Vector | None]]] = {}
        self._postings: dict[str, set[Hashable]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, group: Hashable) -> bool:
        return group in self._keys

    def key(self, group: Hashable) -> ClaimKey:
        """The key a group is matched by."""
        return self._keys[group]

    def add(self, group: Hashable, key: ClaimKey, *, statement: str = "",
            vector: Vector | None = None) -> None:
        """Index a canonical claim (replacing an earlier entry for ``group``)."""
        if group in self._keys:
            self.remove(group)
        self._keys[group] = key
        self._statements[group] = statement
        if vector is not None:
            self._vectors[group] = vector
        self._members[group] = []
        for token in _informative(key):
            self._postings.setdefault(token, set()).add(group)

    def add_member(self, group: Hashable, key: ClaimKey, *,
                   vector: Vector | None = None) -> bool:
        """Index a claim that joined ``group``, so later claims are compared with it too.

        Returns ``False`` (and indexes nothing) when ``group`` is not indexed or already
        has :data:`MAX_MEMBERS` indexed members, its first included.
        """
        members = self._members.get(group)
        if members is None or len(members) + 1 >= MAX_MEMBERS:
            return False
        members.append((key, vector))
        for token in _informative(key):
            self._postings.setdefault(token, set()).add(group)
        return True

    def members(self, group: Hashable) -> int:
        """How many members of ``group`` are indexed, its first included (0: not indexed)."""
        return len(self._members[group]) + 1 if group in self._members else 0

    def remove(self, group: Hashable) -> None:
        """Forget a canonical claim and its indexed members."""
        key = self._keys.pop(group, None)
        self._statements.pop(group, None)
        self._vectors.pop(group, None)
        members = self._members.pop(group, [])
        if key is not None:
            for member in [key, *(k for k, _ in members)]:
                for token in _informative(member):
                    self._postings.get(token, set()).discard(group)

    def candidates(self, key: ClaimKey) -> list[Hashable]:
        """The canonical claims sharing the most informative tokens with ``key``.

        Tokens found in more than :data:`MAX_POSTING` canonical claims are skipped when
        the claim has rarer ones; at most :data:`MAX_CANDIDATES` are returned, most
        shared tokens first (ties: earliest added).
        """
        lists = [self._postings[t] for t in _informative(key) if t in self._postings]
        rare = [p for p in lists if len(p) <= MAX_POSTING]
        counts: Counter[Hashable] = Counter()
        for posting in rare or lists:
            counts.update(posting)
        order = {g: i for i, g in enumerate(counts)}
        ranked = sorted(counts, key=lambda g: (-counts[g], order[g]))
        return ranked[:MAX_CANDIDATES]

    def best_match(self, key: ClaimKey, vector: Vector | None = None,
                   encode: Encoder | None = None) -> Match | None:
        """The canonical claim ``key`` should join, or ``None`` for a new one.

        Parameters
        ----------
        key : ClaimKey
            The new claim's key.
        vector : numpy array, optional
            The claim's sentence embedding; with it, a candidate below the lexical
            threshold can still match by the mixed score (``rule.semantic_threshold``).
        encode : Encoder, optional
            Embeds candidate statements the index has no vector for yet.

        Returns
        -------
        Match or None
            The best group score at or above ``rule.threshold``, else the best mixed
            match at or above ``rule.semantic_threshold`` (ties: earliest added). A
            group's score is the mean :func:`claim_score` over its indexed members, and
            its cosine the mean over those with embeddings; a group with a member that
            :func:`merge_blockers` keeps apart from ``key`` is never matched.
        """
        best: Match | None = None
        best_rank = (-1, 0.0)
        candidates = self.candidates(key)
        if vector is not None and encode is not None:
            self._embed([g for g in candidates if g not in self._vectors], encode)
        for group in candidates:
            first = (self._keys[group], self._vectors.get(group))
            members = [first, *self._members[group]]
            if any(merge_blockers(key, k) for k, _ in members):
                continue
            lexical = sum(claim_score(key, k) for k, _ in members) / len(members)
            cosine: float | None = None
            # A match by key comes first; the embedding only rescues a paraphrase the
            # key misses.
            if lexical >= self.rule.threshold:
                rank, score = (1, lexical), lexical
            elif vector is not None and group in self._vectors:
                cosines = [float(v @ vector) for _, v in members if v is not None]
                cosine = sum(cosines) / len(cosines)
                score = SEMANTIC_WEIGHT * cosine + (1.0 - SEMANTIC_WEIGHT) * lexical
                if score < self.rule.semantic_threshold:
                    continue
                rank = (0, score)
            else:
                continue
            if best is None or rank > (best_rank[0], best_rank[1] + 1e-12):
                best, best_rank = Match(group, round(score, 6), lexical, cosine), rank
        return best

    def _embed(self, groups: Sequence[Hashable], encode: Encoder) -> None:
        texts = [self._statements.get(g) or self._keys[g].text for g in groups]
        if groups:
            for group, vec in zip(groups, encode(texts), strict=True):
                self._vectors[group] = vec


def _informative(key: ClaimKey) -> list[str]:
    """Tokens worth finding candidates by: not therapies, not weak generic words."""
    return [t for t in key.tokens if key.weights[t] >= 1.0]


# --- grouping in memory ---------------------------------------------------------------


@dataclass(frozen=True)
class ClaimGroup:
    """Claims that state the same thing, as indices into the grouped texts.

    Attributes
    ----------
    statement : str
        The key (:func:`canonical_statement`) of the first member, which stands for the
        group (later members were matched against its first :data:`MAX_MEMBERS`).
    members : list[int]
        Indices into the texts given to :func:`group_claims`, ascending.
    scores : list[float]
        Each member's score against the group when it joined (1.0 for the first).
    representative : int
        The first member, whose wording stands for the group.
    """

    statement: str
    members: list[int]
    scores: list[float]
    representative: int = field(default=-1)


def group_claims(
    texts: Sequence[str],
    *,
    articles: Sequence[Hashable] | None = None,
    categories: Sequence[str] | None = None,
    rule: GroupingRule | None = None,
    encoder: Encoder | None = None,
) -> list[ClaimGroup]:
    """Group claims that state the same thing, as ``assign_canonical`` groups them.

    Claims are taken in order; each joins the group whose indexed members it matches
    best on average (:meth:`LibraryIndex.best_match`), or starts a new group. The result
    depends only on the arguments.

    Parameters
    ----------
    texts : sequence of str
        Claim sentences, typically from several articles, in article order.
    articles : sequence, optional
        The article of each text; a claim naming no therapy takes its article's
        (:func:`article_subjects`). Without it, each text stands alone.
    categories : sequence of str, optional
        The category of each text (:func:`frame_similarity` compares claims of one
        category); without it, claims are compared by wording only.
    rule : GroupingRule, optional
        Thresholds; the settings' by default.
    encoder : Encoder, optional
        Sentence embeddings for the semantic score; lexical only without it.

    Returns
    -------
    list[ClaimGroup]
        Ordered by each group's first member; every index appears in exactly one group.
    """
    if articles is not None and len(articles) != len(texts):
        raise ValueError("one article per text is needed")
    if categories is not None and len(categories) != len(texts):
        raise ValueError("one category per text is needed")
    subjects: dict[Hashable, tuple[str, ...]] = {}
    if articles is not None:
        by_article: dict[Hashable, list[str]] = {}
        for text, article in zip(texts, articles, strict=True):
            by_article.setdefault(article, []).append(text)
        subjects = {a: article_subjects(ts) for a, ts in by_article.items()}
    keys = [
        claim_key(t, subjects=subjects.get(articles[i], ()) if articles is not None else (),
                  category=categories[i] if categories is not None else "")
        for i, t in enumerate(texts)
    ]
    vectors = encoder(list(texts)) if encoder is not None and texts else None
    index = LibraryIndex(rule or grouping_rule())
    groups: list[tuple[list[int], list[float]]] = []
    for i, key in enumerate(keys):
        vector = vectors[i] if vectors is not None else None
        match = index.best_match(key, vector)
        if match is None:
            index.add(len(groups), key, statement=texts[i], vector=vector)
            groups.append(([i], [1.0]))
        else:
            members, scores = groups[cast(int, match.group)]
            members.append(i)
            scores.append(match.score)
            index.add_member(match.group, key, vector=vector)
    return [ClaimGroup(keys[m[0]].text, m, s, m[0]) for m, s in groups]


# --- embeddings ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _loaded_encoder() -> Encoder | None:
    from evidence.semantic import SemanticUnavailable, sentence_model

    try:
        model = sentence_model()
    except SemanticUnavailable:
        return None

    def encode(texts: Sequence[str]) -> Vector:
        vectors = model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    return encode


def sentence_encoder(settings: Settings | None = None) -> Encoder | None:
    """The sentence encoder grouping uses, or ``None`` for lexical grouping.

    ``None`` when ``CLAIM_GROUP_SEMANTIC`` is off or the ``[semantic]`` extra is not
    installed; the model is loaded once per process, from the bundled files only.
    """
    if not (settings or get_settings()).claim_group_semantic:
        return None
    return _loaded_encoder()


# --- the library in the database ----------------------------------------------------------


@dataclass
class _Cached:
    index: LibraryIndex
    max_id: int = 0
    count: int = 0
    # Canonical claims whose stored members are in the index (read when first a candidate).
    members_loaded: set[Hashable] = field(default_factory=set)


_CACHE: dict[tuple[str, GroupingRule], _Cached] = {}
_CACHE_LOCK = threading.Lock()


def _database(session: Session) -> str:
    bind: Any = session.get_bind()
    return str(bind.url.render_as_string(hide_password=True))


def _library(session: Session, rule: GroupingRule) -> _Cached:
    """The process's index of this database's canonical claims, brought up to date.

    Only canonical claims added since the last call are read; a count that does not add
    up (rows deleted, a transaction rolled back after indexing) reloads the whole index.
    """
    cache_key = (_database(session), rule)
    cached = _CACHE.get(cache_key)
    if cached is None:
        cached = _CACHE[cache_key] = _Cached(LibraryIndex(rule))
    max_id, count = session.exec(
        select(func.max(CanonicalClaim.id), func.count(col(CanonicalClaim.id)))
    ).one()
    max_id, count = max_id or 0, count or 0
    if max_id == cached.max_id and count == cached.count:
        return cached
    fresh = (
        select(CanonicalClaim.id, CanonicalClaim.key, CanonicalClaim.statement,
               CanonicalClaim.category)
        .order_by(col(CanonicalClaim.id))
    )
    if max_id >= cached.max_id:
        rows = session.exec(fresh.where(col(CanonicalClaim.id) > cached.max_id)).all()
        if cached.count + len(rows) == count:
            _index_rows(cached, rows)
            return cached
    cached = _CACHE[cache_key] = _Cached(LibraryIndex(rule))
    _index_rows(cached, session.exec(fresh).all())
    return cached


def _index_rows(cached: _Cached, rows: Sequence[Any]) -> None:
    for cid, key, statement, category in rows:
        cached.index.add(cid, _canonical_key(key, statement, category), statement=statement)
        cached.max_id = max(cached.max_id, cid)
        cached.count += 1


def _canonical_key(key: str, statement: str, category: str) -> ClaimKey:
    return claim_key(key or statement, category=category)


def new_canonical(statement: str, *, category: str,
                  subjects: Sequence[str] = ()) -> CanonicalClaim:
    """A canonical claim with a readable statement and its key (not yet added).

    Parameters
    ----------
    statement : str
        The wording that stands for the group (whitespace is normalised).
    category : str
        The claim category.
    subjects : sequence of str
        The article's therapies, for a statement that names none.

    Returns
    -------
    CanonicalClaim
    """
    text = " ".join(statement.split())
    return CanonicalClaim(statement=text, key=canonical_statement(text, subjects=subjects),
                          category=category)


def claim_subjects(session: Session, claim: Claim) -> tuple[str, ...]:
    """The therapies of a stored claim's article (:func:`article_subjects`)."""
    texts = session.exec(select(Claim.text).where(Claim.article_id == claim.article_id)).all()
    return article_subjects(list(texts))


def regroup_score(claim_text: str, canonical: CanonicalClaim, *,
                  subjects: Sequence[str] = (), category: str = "") -> float:
    """A claim's :func:`claim_score` against a canonical claim, as kept on a regrouped claim.

    Parameters
    ----------
    claim_text : str
        The claim sentence.
    canonical : CanonicalClaim
        The canonical claim it is moved to.
    subjects : sequence of str
        The claim's article's therapies and conditions (:func:`claim_subjects`).
    category : str
        The claim's category.

    Returns
    -------
    float
        In [0, 1].
    """
    return claim_score(
        claim_key(claim_text, subjects=subjects, category=category),
        _canonical_key(canonical.key, canonical.statement, canonical.category),
    )


def assign_canonical(*, session: Session, claims: Sequence[Claim], actor: str,
                     settings: Settings | None = None) -> None:
    """Attach each claim to the canonical claim it repeats, or start a new one.

    Each claim's key is computed once; candidates come from the process's index of the
    library (:class:`LibraryIndex`), so the library's sentences are not read again. With
    the ``[semantic]`` extra, the claims of the call are embedded in one batch. The score
    is kept on the claim (``canonical_score``) so a reviewer can see why it was grouped.
    A claim that joins is indexed as a member of its canonical claim; an index rebuilt
    from the database reads a candidate group's stored members the first time it is a
    candidate.

    Parameters
    ----------
    session : Session
        Open session; the caller commits. New canonical claims are flushed and audited.
    claims : sequence of Claim
        Flushed claims (with ids and article ids), typically one article's.
    actor : str
        Recorded in the audit trail.
    settings : Settings, optional
        Thresholds and whether to use embeddings; the process's settings by default.
    """
    settings = settings or get_settings()
    cached = _library(session, grouping_rule(settings))
    encode = sentence_encoder(settings)
    by_article: dict[int, list[str]] = {}
    for claim in claims:
        by_article.setdefault(claim.article_id, []).append(claim.text)
    subjects = {a: article_subjects(texts) for a, texts in by_article.items()}
    keys = [claim_key(c.text, subjects=subjects[c.article_id], category=c.category)
            for c in claims]
    vectors = encode([c.text for c in claims]) if encode is not None and claims else None
    for i, (claim, key) in enumerate(zip(claims, keys, strict=True)):
        vector = vectors[i] if vectors is not None else None
        _load_members(session, cached, cached.index.candidates(key))
        found = _matching_canonical(session, cached.index, key, vector, encode)
        if found is None:
            target = _create_canonical(session, claim=claim, actor=actor,
                                       subjects=subjects[claim.article_id])
            score = 1.0
            assert target.id is not None
            cached.index.add(target.id, _canonical_key(target.key, target.statement,
                                                       target.category),
                             statement=target.statement, vector=vector)
            cached.max_id = max(cached.max_id, target.id)
            cached.count += 1
            cached.members_loaded.add(target.id)
        else:
            target, score = found
            cached.index.add_member(target.id, key, vector=vector)
        claim.canonical_id = target.id
        claim.canonical_score = round(score, 4)
        session.add(claim)
    session.flush()


def _load_members(session: Session, cached: _Cached, groups: Sequence[Hashable]) -> None:
    """Index the stored members of candidate canonical claims not read yet.

    An index built from the database knows each canonical claim's key; its members are
    read the first time the group is a candidate (at most :data:`MAX_MEMBERS`, oldest
    first), so a new process groups as the process that built the library did, at a cost
    that follows the candidates, not the library's size.
    """
    missing = [g for g in groups if g not in cached.members_loaded and g in cached.index]
    if not missing:
        return
    rows = session.exec(
        select(Claim.canonical_id, Claim.text, Claim.category, Claim.article_id)
        .where(col(Claim.canonical_id).in_(missing)).order_by(col(Claim.id))
    ).all()
    by_group: dict[Hashable, list[tuple[str, str, int]]] = {}
    for canonical_id, text, category, article_id in rows:
        by_group.setdefault(canonical_id, []).append((text, category, article_id))
    subjects: dict[int, tuple[str, ...]] = {}
    for group in missing:
        cached.members_loaded.add(group)
        # The first member is the canonical claim's own key, already indexed.
        for text, category, article_id in by_group.get(group, [])[1:MAX_MEMBERS]:
            if article_id not in subjects:
                texts = session.exec(select(Claim.text)
                                     .where(Claim.article_id == article_id)).all()
                subjects[article_id] = article_subjects(list(texts))
            key = claim_key(text, subjects=subjects[article_id], category=category)
            if not cached.index.add_member(group, key):
                break


def _matching_canonical(session: Session, index: LibraryIndex, key: ClaimKey,
                        vector: Vector | None,
                        encode: Encoder | None) -> tuple[CanonicalClaim, float] | None:
    # The index is a candidate generator: the chosen row is read back, and an entry that
    # no longer matches its row (edited or rolled back elsewhere) is re-indexed.
    while (match := index.best_match(key, vector, encode)) is not None:
        row = session.get(CanonicalClaim, match.group)
        if row is not None:
            stored = _canonical_key(row.key, row.statement, row.category)
            if stored == index.key(match.group) and stored.category == index.key(
                    match.group).category:
                return row, match.score
        index.remove(match.group)
        if row is not None:
            index.add(match.group, stored, statement=row.statement)
    return None


def _create_canonical(session: Session, *, claim: Claim, actor: str,
                      subjects: Sequence[str]) -> CanonicalClaim:
    canonical = new_canonical(claim.text, category=claim.category, subjects=subjects)
    session.add(canonical)
    session.flush()
    audit.record(session, actor=actor, action="canonical.create", entity="canonical_claim",
                 entity_id=canonical.id, after=audit.snapshot(canonical))
    return canonical
