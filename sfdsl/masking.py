"""The ``mask()`` built-in: hide a concept and its content words in a text (SELF-FAMILIARITY concept guessing)."""

from __future__ import annotations

import re
import time

#: English function words that are never masked on their own (the NLTK English stop-word list).
STOPWORDS = frozenset(
    """a about above after again against ain all am an and any are aren aren't as at be because been before
    being below between both but by can couldn couldn't d did didn didn't do does doesn doesn't doing don don't
    down during each few for from further had hadn hadn't has hasn hasn't have haven haven't having he her here
    hers herself him himself his how i if in into is isn isn't it it's its itself just ll m ma me mightn mightn't
    more most mustn mustn't my myself needn needn't no nor not now o of off on once only or other our ours
    ourselves out over own re s same shan shan't she she's should should've shouldn shouldn't so some such t than
    that that'll the their theirs them themselves then there these they this those through to too under until up
    ve very was wasn wasn't we were weren weren't what when where which while who whom why will with won won't
    wouldn wouldn't y you you'd you'll you're you've your yours yourself yourselves""".split()  # noqa: SIM905
)

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")

#: Limits of one mask() call, like those of a template render (``sfdsl.templates.limits``): the text and the
#: result in characters, the concept in characters and content words, the mask in characters, and wall time.
MAX_TEXT_CHARS = 1_000_000
MAX_CONCEPT_CHARS = 1_000
MAX_CONCEPT_WORDS = 64
MAX_MASK_CHARS = 100
TIMEOUT_S = 2.0


class MaskLimitExceeded(ValueError):
    """A mask() call went past one of its limits."""


def content_words(concept: str) -> list[str]:
    """The words of a concept that are not stop words, longest first (ties in order of appearance).

    >>> content_words("The Theory of Relativity")
    ['Relativity', 'Theory']
    """
    first: dict[str, str] = {}
    for word in _WORD.findall(concept):
        if word.lower() not in STOPWORDS:
            first.setdefault(word.lower(), word)
    return sorted(first.values(), key=lambda w: -len(w))


def mask_concept(text: str, concept: str, mask: str = "___", *, timeout_s: float = TIMEOUT_S) -> str:
    """Replace a concept in ``text`` by ``mask``: the whole concept, then each of its content words.

    Matching ignores case, so every case variant is masked ("Penicillin", "penicillin",
    "PENICILLIN"). The whole concept, then each non-stop-word of it, is masked as a whole
    word (or words) or its regular plural ("theory" masks "Theory" and "theories" but
    not "theoretical"). Stop words ("of", "the") stay unless part of the whole concept.

    >>> mask_concept("The theory of relativity: Relativity theories differ.", "Theory of Relativity")
    'The ___: ___ ___ differ.'

    Raises:
        MaskLimitExceeded: past a limit (``MAX_TEXT_CHARS``, ``MAX_CONCEPT_CHARS``, ``MAX_CONCEPT_WORDS``,
            ``MAX_MASK_CHARS``) or ``timeout_s`` seconds.
    """
    concept = concept.strip()
    if not concept:
        return text
    _within("text", len(text), MAX_TEXT_CHARS)
    _within("concept", len(concept), MAX_CONCEPT_CHARS)
    _within("mask", len(mask), MAX_MASK_CHARS)
    words = content_words(concept)
    if len(words) > MAX_CONCEPT_WORDS:
        raise MaskLimitExceeded(f"the concept has {len(words)} content words (limit {MAX_CONCEPT_WORDS})")
    deadline = time.monotonic() + timeout_s
    out = text
    for part in [concept, *words]:
        out = _mask_part(out, part, mask, deadline, timeout_s)
    return out


def _mask_part(text: str, part: str, mask: str, deadline: float, timeout_s: float) -> str:
    """One pass: every whole-word match of ``part`` (or its plural) in ``text`` becomes ``mask``."""
    size = len(text)

    def replace(match: re.Match[str]) -> str:
        nonlocal size
        size += len(mask) - (match.end() - match.start())
        if size > MAX_TEXT_CHARS:
            raise MaskLimitExceeded(f"the masked text would pass {MAX_TEXT_CHARS} characters")
        if time.monotonic() > deadline:
            raise MaskLimitExceeded(f"mask() exceeded its time limit of {timeout_s:g} s")
        return mask

    if time.monotonic() > deadline:
        raise MaskLimitExceeded(f"mask() exceeded its time limit of {timeout_s:g} s")
    return re.sub(rf"(?<![^\W_]){_plural(part)}(?![^\W_])", replace, text, flags=re.IGNORECASE)


def _within(what: str, size: int, limit: int) -> None:
    if size > limit:
        raise MaskLimitExceeded(f"the {what} has {size} characters (limit {limit})")


def _plural(word: str) -> str:
    """A pattern for a word in the singular or its regular plural, given either.

    "theory"/"theories", "box"/"boxes", "cell"/"cells"; "reactions" also matches "reaction".
    """
    lower = word.lower()
    if len(word) > 3 and lower.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and lower.endswith("s") and not lower.endswith("ss"):
        word = word[:-1]
    if len(word) > 2 and word[-1] in "yY" and word[-2].lower() not in "aeiou":
        return re.escape(word[:-1]) + "(?:y|ies)"
    return re.escape(word) + "(?:e?s)?"
