"""The ``mask()`` built-in: hide a concept and its content words in a text (SELF-FAMILIARITY concept guessing)."""

from __future__ import annotations

import re

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


def mask_concept(text: str, concept: str, mask: str = "___") -> str:
    """Replace a concept in ``text`` by ``mask``: the whole concept, then each of its content words.

    Matching ignores case, so every case variant is masked ("Penicillin", "penicillin",
    "PENICILLIN"). The whole concept, then each non-stop-word of it, is masked as a whole
    word (or words) or its regular plural ("theory" masks "Theory" and "theories" but
    not "theoretical"). Stop words ("of", "the") stay unless part of the whole concept.

    >>> mask_concept("The theory of relativity: Relativity theories differ.", "Theory of Relativity")
    'The ___: ___ ___ differ.'
    """
    concept = concept.strip()
    if not concept:
        return text
    out = text
    for part in [concept, *content_words(concept)]:
        out = re.sub(rf"(?<![^\W_]){_plural(part)}(?![^\W_])", mask, out, flags=re.IGNORECASE)
    return out


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
