"""mask(): the whole concept, its case variants and each content word are masked; stop words stay."""

from __future__ import annotations

import pytest

from sfdsl.masking import content_words, mask_concept


@pytest.mark.parametrize(
    ("text", "concept", "masked"),
    [
        # case variants of the whole concept
        ("Penicillin is a drug. PENICILLIN and penicillin.", "penicillin", "___ is a drug. ___ and ___."),
        # each content word masked on its own; "of" (a stop word) stays
        ("The speed of light: light travels at a speed.", "speed of light", "The ___: ___ travels at a ___."),
        # regular plurals of a content word, but not a longer word that starts with it
        ("Cells divide; a cell grows; cellular life.", "cell", "___ divide; a ___ grows; cellular life."),
        (
            "Theories compete; the theory holds; theoretical work.",
            "theory",
            "___ compete; the ___ holds; theoretical work.",
        ),
        # a plural concept also masks its singular
        ("Light reactions: each reaction needs light.", "light reactions", "___: each ___ needs ___."),
        # a hyphenated concept is split into its words
        ("Self-familiarity and familiarity with the self.", "self-familiarity", "___ and ___ with the ___."),
        # nothing to mask
        ("Plants need water.", "chlorophyll", "Plants need water."),
        ("Plants need water.", "  ", "Plants need water."),
    ],
)
def test_mask_concept(text: str, concept: str, masked: str) -> None:
    assert mask_concept(text, concept) == masked


def test_a_concept_of_stop_words_only_masks_the_whole_phrase() -> None:
    assert content_words("The Who") == []  # "the" and "who" are stop words
    assert mask_concept("I saw The Who and who they were.", "The Who") == "I saw ___ and who they were."


def test_content_words_longest_first_without_repeats() -> None:
    assert content_words("Law of the sea and Sea law") == ["Law", "sea"]
    assert content_words("Theory of General Relativity") == ["Relativity", "General", "Theory"]


def test_the_mask_text_is_a_parameter() -> None:
    assert mask_concept("Paris is in France.", "Paris", "[MASK]") == "[MASK] is in France."


def test_mask_on_1mb_text_with_100k_concept_words_is_refused_at_once() -> None:
    from sfdsl.masking import MaskLimitExceeded

    text = "lorem ipsum " * 83_000  # 1 MB, within the text limit
    concept = " ".join(f"word{i}" for i in range(100_000))
    with pytest.raises(MaskLimitExceeded, match="concept"):
        mask_concept(text, concept)


def test_mask_stops_at_its_time_limit_and_size_limits() -> None:
    from sfdsl.masking import MAX_CONCEPT_WORDS, MAX_TEXT_CHARS, MaskLimitExceeded

    with pytest.raises(MaskLimitExceeded, match="time limit"):
        mask_concept("theory " * 1000, "theory", timeout_s=0.0)
    with pytest.raises(MaskLimitExceeded, match="text"):
        mask_concept("a" * (MAX_TEXT_CHARS + 1), "a")
    with pytest.raises(MaskLimitExceeded, match="content words"):
        mask_concept("x", " ".join(f"w{i}" for i in range(MAX_CONCEPT_WORDS + 1)))
    with pytest.raises(MaskLimitExceeded, match="would pass"):
        mask_concept("a " * 400_000, "a", mask="x" * 100)


def test_mask_limit_at_run_time_is_a_step_error() -> None:
    import sfdsl

    program = sfdsl.compile('recipe r(q: str) {\n  m = mask(q, "a", "' + "x" * 101 + '")\n  return answer: m\n}\n')
    with pytest.raises(sfdsl.StepError, match="mask"):
        program.recipe().run({"q": "a b"}, backend=sfdsl.ScriptedBackend([]))
