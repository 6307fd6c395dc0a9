"""The answer extractor on real-looking outputs (the paper's rule: the last valid statement wins)."""

from __future__ import annotations

import pytest

from medssr_nemo.answers import extract_answer, follows_format

ABCD = list("ABCD")


@pytest.mark.parametrize("text, expected", [
    ("Let's think. The patient has ... The answer is B.", "B"),
    ("The answer is A. Wait, reconsidering the PTT... The answer is D", "D"),       # last match wins
    ("the answer is c", "C"),                                                       # lower case
    ("Therefore, the answer is (B).", "B"),                                         # parenthesised
    ("So the answer is [C]", "C"),                                                  # bracketed (the template's own form)
    ("Final: \\boxed{D}", "D"),                                                     # boxed
    ("\\boxed{\\text{A}}", "A"),
    ("The answer is: **C**", "C"),                                                  # colon + markdown bold
    ("The final answer is B", "B"),
    ("The answer is E.", None),                                                     # E is not an option
    ("The answer is B. Hmm, maybe the answer is F", "B"),                           # invalid later letter ignored
    ("The answer is a rare genetic disorder, so", None),                            # the article 'a' is not a letter
    ("I think it is Factor XII.", None),                                            # no statement at all
    ("", None),
])
def test_extractor_battery(text, expected):
    assert extract_answer(text, ABCD) == expected


def test_ten_option_questions_accept_letters_up_to_j():
    assert extract_answer("The answer is J", list("ABCDEFGHIJ")) == "J"
    assert extract_answer("The answer is J", ABCD) is None


def test_format_is_the_exact_paper_phrase_with_a_valid_letter():
    assert follows_format("... The answer is C", ABCD)
    assert follows_format("The answer is [A].", ABCD)
    assert not follows_format("the answer is c", ABCD)          # not the instructed phrase
    assert not follows_format("\\boxed{C}", ABCD)
    assert not follows_format("The answer is F", ABCD)
