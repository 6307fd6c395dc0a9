"""The shared answer extractor in both modes.

``paper`` (the default) is checked on a battery whose expected results were worked by hand from
the paper script's rule as ``docs/evaluation.md`` states it: rules in order (``The answer is
X``, ``... $\\boxed{X}$``, ``... [X]``, gemma-only ``... **X**``, then ``The answer is X`` in any
case, upper-cased); the first rule with any match decides; the last match within it wins; no
check against the question's letters.
"""

from __future__ import annotations

import pytest

from medssr_nemo.answers import AnswerReader, extract_answer, follows_format

ABCD = list("ABCD")

# On main before this change the extractor had no modes and applied the lenient rule everywhere:
# these cases (E on a four-option question, "Bacteria", first rule deciding over a later form,
# "(B)" ignored) gave different answers there.
PAPER_BATTERY = [
    # plain statements, last match within the first rule wins
    ("Let's think. The patient has ... The answer is B.", "B"),
    ("The answer is A. Wait, reconsidering the PTT... The answer is D", "D"),
    ("Some reasoning.\nThe answer is D.\n", "D"),
    ("The answer is B.The answer is A.", "A"),
    # no restriction to the question's letters
    ("The answer is E", "E"),
    ("The answer is E. On reflection, The answer is C", "C"),
    ("The answer is C. No wait: The answer is F", "F"),
    ("The answer is J", "J"),
    # words that start with a capital letter are read by rule 1
    ("The answer is Bacteria", "B"),
    ("The answer is Ca2+ deficiency", "C"),
    ("The answer is I think B", "I"),
    ("The answer is LETTER", "L"),
    # lower case: only the last, case-insensitive rule, upper-cased
    ("the answer is c", "C"),
    ("THE ANSWER IS D", "D"),
    ("The Answer Is C", "C"),
    ("The answer is b, because the enzyme...", "B"),
    ("The answer is a rare metabolic disease", "A"),
    ("The answer is option B", "O"),
    ("the answer is d. The answer is a", "A"),
    # the first rule with any match decides, even when another form comes later
    ("The answer is [B]. Then The answer is C", "C"),
    ("The answer is C. Later: The answer is [B]", "C"),
    ("The answer is $\\boxed{A}$ and The answer is [B]", "A"),
    ("The answer is [B] ... The answer is $\\boxed{A}$", "A"),
    ("the answer is c. The answer is [A]", "A"),
    ("The answer is A; the answer is d", "A"),
    # the boxed and bracketed forms, exact case only
    ("The answer is $\\boxed{C}$", "C"),
    ("So: The answer is [B].", "B"),
    ("The answer is [b]", None),
    ("The answer is $\\boxed{c}$", None),
    # forms the script does not read
    ("The answer is (B)", None),
    ("The answer is **C**", None),
    ("\\boxed{A}", None),
    ("Final answer: B", None),
    ("The final answer is B", None),
    ("The answer is: B", None),
    ("The answer is  B", None),
    ("The answer is\nB", None),
    ("The answer isB", None),
    ("The answer is 4", None),
    ("The answer is Ä", None),
    ("Format the final answer as: The answer is [LETTER].", None),
    ("I cannot decide between the options.", None),
    ("", None),
    ("   \n ", None),
]


@pytest.mark.parametrize("text, expected", PAPER_BATTERY)
def test_paper_mode_follows_the_scripts_rules(text, expected):
    assert extract_answer(text, ABCD) == expected                  # paper is the default
    assert extract_answer(text, ABCD, mode="paper") == expected


def test_the_battery_is_large_enough():
    assert len(PAPER_BATTERY) >= 40


@pytest.mark.parametrize("text, model_name, expected", [
    ("The answer is **C**", "google/gemma-2-9b-it", "C"),
    ("The answer is **C**", "Gemma-3-27B", "C"),
    ("The answer is **C**", "Qwen/Qwen3-8B-Base", None),
    ("The answer is **C**. the answer is b", "gemma-2b", "C"),     # rule 4 comes before rule 5
    ("The answer is **C**. the answer is b", "llama", "B"),
    ("The answer is **C**. The answer is B", "gemma-2b", "B"),     # rule 1 still comes first
])
def test_the_bold_rule_applies_to_gemma_models_only(text, model_name, expected):
    assert extract_answer(text, ABCD, model_name=model_name) == expected
    assert AnswerReader("paper", model_name)(text, ABCD) == expected


LENIENT_BATTERY = [
    ("Let's think. The patient has ... The answer is B.", "B"),
    ("The answer is A. Wait, reconsidering the PTT... The answer is D", "D"),       # last match wins
    ("the answer is c", "C"),                                                       # lower case
    ("Therefore, the answer is (B).", "B"),                                         # parenthesised
    ("So the answer is [C]", "C"),                                                  # bracketed
    ("Final: \\boxed{D}", "D"),                                                     # bare boxed
    ("\\boxed{\\text{A}}", "A"),
    ("The answer is: **C**", "C"),                                                  # colon + markdown bold
    ("The final answer is B", "B"),
    ("The answer is E.", None),                                                     # E is not an option
    ("The answer is B. Hmm, maybe the answer is F", "B"),                           # invalid later letter ignored
    ("The answer is a rare genetic disorder, so", None),                            # the article 'a' is not a letter
    ("The answer is [C]. Double-check: \\boxed{D}", "D"),                           # last match over every form
    ("I think it is Factor XII.", None),
    ("", None),
]


@pytest.mark.parametrize("text, expected", LENIENT_BATTERY)
def test_lenient_mode_keeps_the_earlier_rule(text, expected):
    assert extract_answer(text, ABCD, mode="lenient") == expected


def test_lenient_mode_accepts_letters_up_to_the_last_option():
    assert extract_answer("The answer is J", list("ABCDEFGHIJ"), mode="lenient") == "J"
    assert extract_answer("The answer is J", ABCD, mode="lenient") is None


def test_an_unknown_mode_is_an_error_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: paper, lenient"):
        extract_answer("The answer is A", ABCD, mode="strict")
    with pytest.raises(ValueError, match="allowed: paper, lenient"):
        AnswerReader("strict")


def test_format_is_the_exact_paper_phrase_with_a_valid_letter():
    assert follows_format("... The answer is C", ABCD)
    assert follows_format("The answer is [A].", ABCD)
    assert not follows_format("the answer is c", ABCD)          # not the instructed phrase
    assert not follows_format("\\boxed{C}", ABCD)
    assert not follows_format("The answer is F", ABCD)
