"""The recipe path's token rules on a stand-in tokenizer: piece-by-piece tokenisation around
images (BOS on the first piece only) and the three windows, merges across the boundary included."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from model_server.backends.base import ScoreTask
from model_server.backends.reference_prompt import RecipeInputs
from model_server.backends.score_recipe import (
    LAST_OPTION_LENGTH,
    LENGTH_DIFFERENCE,
    MODEL_TOKEN,
    OPTION_TOKENS,
    SPLIT_AT_IMAGES,
    Recipe,
)
from serving.errors import InvalidRequest

BOS, IMG = 1, 2


def tokens(text: str) -> list[int]:
    """BOS, then one token per character, except "<image>" (one token) and "ab" (merged),
    and a leading space dropped at a piece's start the way some SentencePiece setups do."""
    out, i = [BOS], 0
    while i < len(text):
        if text.startswith("<image>", i):
            out.append(IMG)
            i += 7
        elif text.startswith("ab", i):
            out.append(1000)
            i += 2
        else:
            out.append(100 + ord(text[i]))
            i += 1
    return out


def recipe_inputs() -> RecipeInputs:
    builder = SimpleNamespace(
        tokens=tokens, processor=SimpleNamespace(image_token="<image>"), image_token_id=IMG,
        image_marker="<image>\n", tokenizer=SimpleNamespace(bos_token_id=BOS, eos_token="$"))
    return RecipeInputs(builder, SimpleNamespace(model_type="llava", vision_config=None))


def task(text, options, recipe, images=1):
    return ScoreTask("q", text, [object()] * images, options, raw_prompt=True, recipe=recipe)


def test_split_keeps_bos_on_the_first_piece_only():
    r = recipe_inputs()
    assert r.tokens("x<image>y", split=True) == [BOS, 100 + ord("x"), IMG, 100 + ord("y")]
    assert r.tokens("<image>\n<image>", split=True) == [BOS, IMG, 110, IMG]


def test_last_option_length_counts_bos_so_the_suffix_is_in_the_window():
    r = recipe_inputs()
    t = task("<img>\nQ:", ["ab", "x"], Recipe(LAST_OPTION_LENGTH, MODEL_TOKEN, SPLIT_AT_IMAGES,
                                              " ", "$"))
    (seq, b, e), (seq2, b2, e2) = r.spans(t)
    # "ab" -> BOS + one merged token: 2 tokens; the window is the merged token and "$".
    assert seq[b:e] == [1000, 100 + ord("$")] and e == len(seq)
    assert seq2[b2:e2] == [100 + ord("x"), 100 + ord("$")]


def test_length_difference_and_option_tokens_differ_on_a_boundary_merge():
    """The prompt ends with "a" and the option starts with "b": "ab" merges across the
    boundary. The departure window scores the merged token; the length difference does not."""
    r = recipe_inputs()
    seq, b, e = r.spans(task("<img>\nQ a", ["bc"], Recipe(LENGTH_DIFFERENCE)))[0]
    assert seq[b:e] == [100 + ord("c")]
    seq, b, e = r.spans(task("<img>\nQ a", ["bc"], Recipe(OPTION_TOKENS, option_prefix="")))[0]
    assert seq[b:e] == [1000, 100 + ord("c")]
    with pytest.raises(InvalidRequest, match="nothing would be scored"):  # "b" adds no token
        r.spans(task("<img>\nQ a", ["b"], Recipe(LENGTH_DIFFERENCE)))


def test_windows_that_cannot_be_scored_are_refused():
    r = recipe_inputs()
    with pytest.raises(InvalidRequest, match="scoring_window"):  # reaches into the image
        r.spans(task("<img>", ["xyz"], Recipe(LAST_OPTION_LENGTH, MODEL_TOKEN)))
