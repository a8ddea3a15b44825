from model_server.backends.chat_prompt import answer_span, user_content


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
