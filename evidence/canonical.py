"""Canonical claims: the key form a claim shares with its rewordings, and claim similarity.

Claims repeated across articles ("relief within hours") are grouped into the claim library
through :func:`canonical_statement`, a key form with locations, brands and hedges removed
and synonyms folded, and :func:`claim_similarity`, a weighted overlap of those keys.
:func:`group_claims` groups a list of claim sentences the same way.

Pure functions over text: the claim library (``evidence.crud``) and claim extraction
(``ingest``) both use them, so they live in ``evidence``, below ``ingest``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import cast

import Stemmer

__all__ = [
    "DEFAULT_GROUP_THRESHOLD",
    "ClaimGroup",
    "canonical_statement",
    "claim_similarity",
    "group_claims",
]

#: Similarity at or above which a claim joins a group (see :func:`group_claims`).
DEFAULT_GROUP_THRESHOLD = 0.45


@dataclass(frozen=True)
class ClaimGroup:
    """Claims that state the same thing, as indices into the grouped texts.

    Attributes
    ----------
    statement : str
        The canonical statement (:func:`canonical_statement`) of the representative.
    members : list[int]
        Indices into the texts given to :func:`group_claims`, ascending.
    scores : list[float]
        Each member's similarity to ``statement``, aligned with ``members``.
    representative : int
        The member most similar to the others, whose wording stands for the group.
    """

    statement: str
    members: list[int]
    scores: list[float]
    representative: int = field(default=-1)


_STEMMER = Stemmer.Stemmer("english")

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
    bipolar chronic major post-traumatic obsessive-compulsive addition
    """.split()
)
# Words and phrases folded to one concept token before stemming (order matters: longer
# phrases first).
_SYNONYMS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.IGNORECASE), r)
    for p, r in [
        (r"\b(?:iv |intravenous )?(?:ketamine|esketamine|spravato)(?:[- ]assisted)?"
         r"(?: infusion)?(?: therapy| treatment| infusions?| therapies| treatments)?\b",
         " ketamine "),
        (r"\b(?:the|this) (?:treatment|therapy|medication|drug|approach)\b", " ketamine "),
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
        (r"\b(?:depressive|depressed|depression)\b", " depression "),
        (r"\b(?:treatment|therapy)[- ]resistant\b", " resistant "),
        (r"\b(?:well[- ]tolerated|safe|safer|safety)\b", " safe "),
        (r"\bside[- ]effects?\b|\badverse (?:effects?|events?|reactions?)\b", " sideeffect "),
        (r"\bpost[- ]traumatic stress disorder\b", " ptsd "),
        (r"\bobsessive[- ]compulsive disorder\b", " ocd "),
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
_STOPWORDS = frozenset(
    """
    a an the and or but if of to in on at by for with from as into than then that this
    these those it its it's is are was were be been being has have had do does did
    nor so such which who whom whose what when where while how why all any each both
    few more other own same too only will would shall should must about after before
    during over under again further once here there their they them he she his her we
    our you your i me my us can one s t help helps helping make makes making provide
    provides providing offer offers offering patients patient individuals people those
    experience experiencing report reporting feel feeling noticeable unlike compared
    while instead beyond additionally however recent years ability
    """.split()
)
# Negation is kept as one token, so "does not cause" and "causes" stay apart; directions
# are folded so that "raises" and "lowers" can be told to contradict.
_POLARITY: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        (r"\bnot only\b", " "),
        (r"\bnot without\b", " with "),
        (r"\b(?:\w+n't|cannot|never|not|no|without)\b", " not "),
        (r"\b(?:increas\w*|rais(?:e|es|ed|ing)|elevat\w*|boost\w*|enhanc\w*|higher)\b",
         " increase "),
        (r"\b(?:decreas\w*|lower(?:s|ed|ing)?|diminish\w*"
         r"|reduc\w*\b(?! (?:the )?(?:symptoms?|severity)))\b", " decrease "),
    ]
]  # fmt: skip
# Tokens that carry little of what a claim says (its subject, in this corpus, is nearly
# always the treatment).
_WEAK_TOKENS = {
    "ketamin": 0.25,
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


@lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    # Stemming to a fixed point keeps canonical_statement idempotent.
    previous = word
    for _ in range(4):
        current = cast(str, _STEMMER.stemWord(previous))
        if current == previous:
            break
        previous = current
    return previous


def _strip_places(text: str) -> str:
    def drop(match: re.Match[str]) -> str:
        words = re.findall(r"[A-Za-z][\w'-]*", match.group(0))[1:]
        if any(w.lower() in _DOMAIN_CAPITALS for w in words):
            return match.group(0)
        return " "

    return _PLACES.sub(drop, _LOCAL.sub(" ", _BRANDS.sub(" ", text)))


def _canonical_tokens(text: str) -> list[str]:
    text = _strip_places(text)
    text = text.lower().replace("\u2019", "'")
    for pattern, replacement in _POLARITY:
        text = pattern.sub(replacement, text)
    for pattern, replacement in _SYNONYMS:
        text = pattern.sub(replacement, text)
    text = _HEDGES.sub(" ", text)
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


def canonical_statement(text: str) -> str:
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

    Returns
    -------
    str
        Lower-case stems separated by single spaces.
    """
    return " ".join(_canonical_tokens(text))


def _token_weights(tokens: Sequence[str]) -> dict[str, float]:
    return {t: _WEAK_TOKENS.get(t, 1.0) for t in tokens}


def _similarity(a: dict[str, float], b: dict[str, float]) -> float:
    if not a or not b:
        return 0.0
    shared = sum(min(a[t], b[t]) for t in a.keys() & b.keys())
    score = 2.0 * shared / (sum(a.values()) + sum(b.values()))
    # Claims that differ in a number, in negation or in direction contradict each other
    # however many words they share ("10% of patients" / "90% of patients").
    numbers_a = {t for t in a if t[0].isdigit()}
    numbers_b = {t for t in b if t[0].isdigit()}
    if numbers_a and numbers_b and not numbers_a & numbers_b:
        score *= _CONTRADICTION_FACTOR
    if ("not" in a) != ("not" in b):
        score *= _CONTRADICTION_FACTOR
    if _direction(a) * _direction(b) < 0:
        score *= _CONTRADICTION_FACTOR
    return score


_CONTRADICTION_FACTOR = 0.5


def _direction(tokens: dict[str, float]) -> int:
    return int(_stem("increase") in tokens) - int(_stem("decrease") in tokens)


def claim_similarity(a: str, b: str) -> float:
    """How nearly two claims say the same thing, from their canonical statements.

    A weighted Dice coefficient over the canonical tokens: shared concepts count in
    full, the near-universal subject ("ketamine") and generic nouns count less.

    Parameters
    ----------
    a, b : str
        Claim sentences (or canonical statements).

    Returns
    -------
    float
        In [0, 1]; 1 for claims with the same canonical statement.
    """
    return round(
        _similarity(_token_weights(_canonical_tokens(a)), _token_weights(_canonical_tokens(b))),
        6,
    )


def group_claims(
    texts: Sequence[str], *, threshold: float = DEFAULT_GROUP_THRESHOLD
) -> list[ClaimGroup]:
    """Group claims that state the same thing.

    Claims are taken in order; each joins the existing group whose members it is most
    similar to on average, if that average reaches ``threshold``, and otherwise starts
    a new group. Average (not best) similarity keeps a chain of small rewordings from
    pulling unrelated claims together. The group's statement is the canonical
    statement of its most central member. The result depends only on ``texts`` and
    ``threshold``.

    Parameters
    ----------
    texts : sequence of str
        Claim sentences, typically from several articles.
    threshold : float
        Minimum average similarity for a claim to join a group.

    Returns
    -------
    list[ClaimGroup]
        Ordered by each group's first member; every index appears in exactly one group.
    """
    weights = [_token_weights(_canonical_tokens(t)) for t in texts]
    groups: list[list[int]] = []
    # Only groups sharing a token can be similar at all; the index keeps grouping
    # near-linear on a large claim library.
    groups_with: dict[str, set[int]] = {}
    for i, w in enumerate(weights):
        best, best_score = -1, 0.0
        candidates = sorted(set().union(*(groups_with.get(t, set()) for t in w)))
        for g in candidates:
            members = groups[g]
            score = sum(_similarity(w, weights[m]) for m in members) / len(members)
            if score > best_score + 1e-12:
                best, best_score = g, score
        if best < 0 or best_score < threshold:
            best = len(groups)
            groups.append([])
        groups[best].append(i)
        for token in w:
            groups_with.setdefault(token, set()).add(best)

    result: list[ClaimGroup] = []
    for members in groups:
        representative = max(
            members,
            key=lambda m: (sum(_similarity(weights[m], weights[o]) for o in members), -m),
        )
        statement = canonical_statement(texts[representative])
        rep_weights = weights[representative]
        scores = [round(_similarity(weights[m], rep_weights), 6) for m in members]
        result.append(ClaimGroup(statement, list(members), scores, representative))
    return result
