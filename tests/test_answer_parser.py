"""The one answer parser: every accepted form, and every case where it must refuse to guess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from serving.answer_parser import parse_answer

OPTIONS = ["a dog", "a cat", "Vitamin C", "two people"]


@pytest.mark.parametrize("text", [
    "B", "b", " B ", "(B)", "(b)", "[B]", "B.", "B)", "B:", "**B**", "*B*", "`B`", "'B'",
    "Answer: B", "answer: b", "**Answer:** B", "Answer - B", "The answer is B.", "The answer is: B",
    "The correct answer is (B).", "My final answer is option B.", "The answer is B, not A.",
    "I think it's option B.", "I'd choose option (B).", "Choice B", "option B rather than option C",
    "B. a cat", "B) a cat", "(B) a cat", "B: A cat.", "B\nThe animal on the sofa is a cat.",
    "B. The animal has whiskers.", "a cat", "A cat", "A CAT!", "  a cat. ", "The answer is a cat.",
    "It is B, not A.", "B is correct.", "I believe it is B", "I'm not sure, but the answer is B.",
    "The answer is 'B'.", 'The answer is "B".', "Answer:\nB", "ANSWER: B", "The correct option is B.",
    "Option (B) is correct.", "The answer is: **B. a cat**", "I'd pick 'B'",
])
def test_reads_b(text):
    got = parse_answer(text, OPTIONS)
    assert (got.letter, got.parsed) == ("B", True), (text, got)


@pytest.mark.parametrize("text,letter", [
    ("A", "A"), ("a", "A"), ("(a)", "A"), ("A.", "A"), ("A is correct.", "A"), ("I think A.", "A"),
    ("The answer is A.", "A"), ("A dog.", "A"), ("a dog", "A"), ("The answer is a dog", "A"),
    ("Vitamin c.", "C"), ("The correct answer is (C) Vitamin C.", "C"), ("C. Vitamin C", "C"),
    ("D", "D"), ("Two people", "D"), ("The answer is B. Option A is wrong because it shows a cat.", "B"),
    ("I can't be certain, but the answer is D.", "D"),
])
def test_reads_other_letters(text, letter):
    assert parse_answer(text, OPTIONS).letter == letter, text


@pytest.mark.parametrize("text,why", [
    ("", "empty"), ("   ", "empty"), ("**", "empty"),
    ("A or B", "several"), ("A, B", "several"), ("B/C", "several"), ("The answer is A or B.", "several"),
    ("Either option A or option C.", "several"), ("A and B are both plausible.", "several"),
    ("A. a dog\nB. a cat\nC. Vitamin C\nD. two people", "several"),
    ("I cannot answer this.", "refusal"), ("Sorry, I can't determine that from the image.", "refusal"),
    ("I'm unable to see the image, so I cannot tell whether it is B.", "refusal"),
    ("None of the options is correct.", "refusal"), ("As an AI, I don't know.", "refusal"),
    ("A cat is sitting on the mat.", "no option"), ("A man holds a sign.", "no option"),
    ("I see two dogs and a man.", "no option"), ("Hmm, hard to say.", "no option"),
    ("The image shows Vitamin C tablets", "no option"), ("The answer is not A.", "rules"),
    ("B. a dog", "ambiguous"), ("Neither A nor B.", "rules"), ("All of the above.", "no option"),
    ("Both A and C are right.", "several"), ("It's A's turn and B's turn", "no option"),
])
def test_refuses_to_guess(text, why):
    got = parse_answer(text, OPTIONS)
    assert got.letter is None and not got.parsed, (text, got)
    assert why in got.reason, (text, got.reason)


def test_option_text_matching_several_options_is_ambiguous():
    got = parse_answer("yes", ["Yes", "No", "yes.", "Maybe"])
    assert got.letter is None and "several options" in got.reason


def test_a_letter_that_is_another_options_text_is_ambiguous():
    got = parse_answer("C", ["C", "D", "E", "F"])  # "C" is letter C, and option A's text
    assert got.letter is None and "ambiguous" in got.reason


def test_a_letter_outside_the_choices_is_not_read():
    assert parse_answer("E", OPTIONS).letter is None
    assert parse_answer("B", ["yes", "no"]).letter == "B"
    assert parse_answer("C", ["yes", "no"]).letter is None


def test_custom_letters_and_mismatched_lengths():
    with pytest.raises(ValueError, match="single uppercase letters"):
        parse_answer("Answer: 2", ["red", "blue"], letters=["1", "2"])
    assert parse_answer("(Y)", ["red", "blue"], letters=["X", "Y"]).letter == "Y"
    with pytest.raises(ValueError, match="3 options but 2 letters"):
        parse_answer("A", ["a", "b", "c"], letters=["A", "B"])


def test_numeric_option_text():
    assert parse_answer("3", ["2", "3", "4", "5"]).letter == "B"
    assert parse_answer("The answer is 5.", ["2", "3", "4", "5"]).letter == "D"


def test_imports_only_the_standard_library():
    root = Path(__file__).resolve().parents[1]
    code = ("import sys; before = set(sys.modules); import serving.answer_parser; "
            "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
            "print(sorted(new - set(sys.stdlib_module_names) - {'serving'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(root)})
    assert out.stdout.strip() == "[]", out.stdout
