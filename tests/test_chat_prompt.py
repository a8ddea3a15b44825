import pytest

from model_server.backends.chat_prompt import answer_span, render, user_content
from serving.errors import InvalidRequest


def test_images_go_first_without_placeholders():
    assert user_content("Q?", 2) == [{"type": "image"}, {"type": "image"},
                                     {"type": "text", "text": "Q?"}]


def test_placeholders_put_images_in_order():
    assert user_content("a <img> b <img>", 2) == [
        {"type": "text", "text": "a "}, {"type": "image"}, {"type": "text", "text": " b "},
        {"type": "image"}]


def test_answer_span_handles_boundary_merge():
    prompt = [1, 2, 3, 9]          # ends with a space token (9)
    answer = [1, 2, 3, 10, 11]     # 9 merged into 10 ("ĠA")
    seq, b, e = answer_span(prompt, answer, None, False)
    assert (seq, b, e) == (answer, 3, 5)


def test_answer_span_end_of_turn_adds_one_token():
    prompt, answer, full = [1, 2], [1, 2, 5, 6], [1, 2, 5, 6, 99, 7]
    seq, b, e = answer_span(prompt, answer, full, True)
    assert (seq, b, e) == ([1, 2, 5, 6, 99], 2, 5)


def llava_v1_template(msgs, add_generation_prompt=False, continue_final_message=False):
    """The llava_v1 conversation as LLaVA-1.5's chat template writes it."""
    out = ""
    for k, m in enumerate(msgs):
        body = "".join(c["text"] if c["type"] == "text" else "<image>\n" for c in m["content"])
        if m["role"] == "user":
            out += f"USER: {body} "
        else:
            last = k == len(msgs) - 1
            out += f"ASSISTANT: {body}" + ("" if last and continue_final_message else "</s>")
    return out + ("ASSISTANT: " if add_generation_prompt else "")


def test_llava_render_is_the_reference_prompt():
    r = render(llava_v1_template, "What is shown?", 1, "A cat")
    assert r.prompt == "USER: <image>\nWhat is shown? ASSISTANT: "
    assert r.answer_end == r.prompt + "A cat"
    assert r.full == "USER: <image>\nWhat is shown? ASSISTANT: A cat</s>"  # option + </s>


def test_answer_span_refuses_an_end_of_turn_the_template_does_not_write():
    prompt, answer = [1, 2], [1, 2, 5, 6]
    with pytest.raises(InvalidRequest) as exc:
        answer_span(prompt, answer, list(answer), True)  # nothing after the answer
    assert exc.value.field == "include_end_of_turn"
