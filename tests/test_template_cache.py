"""The chat template's render cache: a repeated render is answered without rendering, and a
different message or flag never gets another's text."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from model_server.backends.chat_prompt import messages
from model_server.backends.template_cache import TemplateCache


def counting_render():
    calls = []

    def render(msgs, **flags):
        calls.append((msgs, flags))
        return f"{msgs!r}|{sorted(flags.items())!r}"

    return render, calls


def test_a_repeated_render_is_reused_and_every_difference_renders_again():
    render, calls = counting_render()
    cache = TemplateCache(render)
    first = cache(messages("Which?", 1), add_generation_prompt=True)
    assert cache(messages("Which?", 1), add_generation_prompt=True) == first
    assert len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)
    variants = [cache(messages("Which?", 2), add_generation_prompt=True),   # images
                cache(messages("Which.", 1), add_generation_prompt=True),   # text
                cache(messages("Which?", 1)),                               # flags
                cache(messages("Which?", 1, "A"), continue_final_message=True)]  # answer
    assert len(calls) == 5 and len({first, *variants}) == 5
    assert variants == [render(m, **f) for m, f in calls[1:5]]


def test_the_oldest_render_is_forgotten_beyond_the_size():
    render, calls = counting_render()
    cache = TemplateCache(render, size=2)
    for text in ("a", "b", "a", "c"):  # "a" used again: "b" is the oldest when "c" comes
        cache(messages(text, 0))
    assert len(calls) == 3
    cache(messages("a", 0))
    assert len(calls) == 3
    cache(messages("b", 0))
    assert len(calls) == 4


def test_threads_get_their_own_messages_text():
    render, _ = counting_render()
    cache = TemplateCache(render, size=8)
    texts = [f"question {k % 20}" for k in range(400)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda t: cache(messages(t, 1), add_generation_prompt=True), texts))
    assert got == [render(messages(t, 1), add_generation_prompt=True) for t in texts]
