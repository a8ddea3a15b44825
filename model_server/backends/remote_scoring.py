"""The remote backends' scoring modes, one small class each.

Remote APIs expose different things, so there are two ways to score:

- ``completions-echo`` (EchoScoring): /v1/completions with ``echo`` + ``logprobs``
  returns the log-probability of every prompt token, so the option tokens of
  ``prompt + option`` give the PPL score; one call per option. Text
  only: the completions endpoint takes no images.
- ``chat-letter`` (LetterScoring): /v1/chat/completions with ``top_logprobs`` on
  the first generated token; one call per question. Only letters can be ranked
  this way, so it implements the leaderboard's "PPL for A/B/C/D" method. When
  none of the options' letters is among the returned tokens the question is
  Unparsed: ranking would only break a tie.

A mode checks a task before any call goes out, scores it with the client's
retrying `call` (one budget per question), and names what it scores and which
settings change scores (`features` for the typed Info fields clients decide by,
`details` to read, `fingerprint_parts`).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from typing import ClassVar

from model_server.backends.base import OptionScore, ScoreTask, Unparsed
from model_server.backends.remote_client import Budget, MalformedAnswer, RemoteClient
from model_server.backends.remote_settings import OpenAISettings
from model_server.backends.score_recipe import ScoreFeatures
from serving.errors import InvalidRequest, NotSupported
from serving.images import PLACEHOLDER

log = logging.getLogger(__name__)

# Characters around a letter token that still mean "this letter": " C", "C.", "(C".
LETTER_STRIP = " \t\n\r.:)(][*\"'"

Chat = Callable[[ScoreTask], list[dict]]  # chat messages for a task (images as content parts)


def first_choice(resp: dict) -> dict:
    choices = resp.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        raise MalformedAnswer("no choices in the answer")
    return choices[0]


def normalise_letter(token: str) -> str:
    return token.strip(LETTER_STRIP)


def logsumexp(values: Sequence[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def letter_logprobs(top: Sequence[dict], letters: Sequence[str], k: int) -> tuple[list[float], int]:
    """Log-probability of each letter as the first answer token, from a top-k list.

    Token variants of one letter (" C", "C", "C.") are different tokens with the
    same meaning, so their probabilities add (logsumexp). A letter missing from
    the top k has a probability below the smallest listed one; it gets the floor
    ``min(listed) - ln(k)``, strictly below every listed letter, so it ranks last
    and never ties with a letter the model actually considered. Returns the
    scores and how many letters got the floor; the caller treats "all floored"
    as unparsed, since the floors would only tie.
    """
    found: dict[str, list[float]] = {}
    listed = []
    for entry in top:
        lp = entry.get("logprob")
        if lp is None:
            continue
        lp = float(lp)
        listed.append(lp)
        found.setdefault(normalise_letter(str(entry.get("token", ""))), []).append(lp)
    if not listed:
        raise NotSupported("the remote returned no top_logprobs; "
                           "it cannot score in chat-letter mode")
    floor = min(listed) - math.log(max(k, 2))
    out, floored = [], 0
    for letter in letters:
        if letter in found:
            out.append(logsumexp(found[letter]))
        else:
            out.append(floor)
            floored += 1
    return out, floored


def option_span(offsets: Sequence[int], token_logprobs: Sequence[float | None], context_len: int,
                full_len: int) -> OptionScore:
    """Sum the echoed log-probs of the tokens that carry the option's characters.

    A token belongs to the option when it ends after the context (so a token
    merged across the question/option boundary counts, as it carries option
    text) and starts before the end of the prompt (so a generated token that
    some servers append is left out). Token ends come from the next token's
    offset, not from token strings, which byte-level tokenizers garble.
    """
    total, n = 0.0, 0
    for i, start in enumerate(offsets):
        end = offsets[i + 1] if i + 1 < len(offsets) else full_len
        if start >= full_len:
            break
        if end <= context_len:
            continue
        lp = token_logprobs[i]
        if lp is None:
            raise InvalidRequest("prompt.text", "the option starts at the first token, which has "
                                 "no log-probability; the prompt template must put text before it")
        total += float(lp)
        n += 1
    if n == 0:
        raise MalformedAnswer("the remote echoed no tokens for the option (offsets did not "
                              "cover it)")
    return OptionScore(logprob_sum=total, num_tokens=n)


class ScoringMode(abc.ABC):
    """One way of scoring through a remote API."""

    name: ClassVar[str]

    def __init__(self, settings: OpenAISettings, model: str, client: RemoteClient, chat: Chat):
        self.settings = settings
        self.model = model
        self.client = client
        self.chat = chat

    @abc.abstractmethod
    def check(self, task: ScoreTask) -> None:
        """Refuse a task this mode cannot score, before any call goes out."""

    @abc.abstractmethod
    async def score(self, task: ScoreTask, budget: Budget) -> list[OptionScore] | Unparsed:
        """The task's option scores, in order, or Unparsed; calls share the budget."""

    @abc.abstractmethod
    def features(self) -> ScoreFeatures:
        """What this mode's Score honours (Info.capabilities.score_features)."""

    @abc.abstractmethod
    def details(self) -> dict[str, str]:
        """What is scored and how, for Info.details (informational)."""

    @abc.abstractmethod
    def fingerprint_parts(self) -> list[str]:
        """The settings that change this mode's scores."""


RAW_REFUSAL = ("a chat API always applies the model's chat template; it cannot read a "
               "raw prompt")
EOT_REFUSAL = "a remote API cannot score the chat template's end-of-turn token"


class LetterScoring(ScoringMode):
    """chat-letter: log p(letter) as the first answer token, from top_logprobs; num_tokens = 1."""

    name = "chat-letter"

    def check(self, task: ScoreTask) -> None:
        if task.raw_prompt:
            raise InvalidRequest("raw_prompt", f"{RAW_REFUSAL}. Use a chat-template "
                                 "preset, or a server with score_mode=completions-echo")
        bad = [o for o in task.options if len(o.strip()) != 1 or not ("A" <= o.strip() <= "Z")]
        if bad:
            raise InvalidRequest("options", f"score_mode=chat-letter ranks only single letters "
                                 f"(the 'PPL for A/B/C/D' method: the remote API exposes the "
                                 f"log-probs of the first answer token only); got {bad[0]!r}. "
                                 "Use the letter method, or a server with "
                                 "score_mode=completions-echo")
        if len({o.strip() for o in task.options}) != len(task.options):
            raise InvalidRequest("options", "letters must be distinct")

    async def score(self, task: ScoreTask, budget: Budget) -> list[OptionScore] | Unparsed:
        s = self.settings
        body = {"model": self.model, "messages": self.chat(task), "logprobs": True,
                "top_logprobs": s.top_logprobs, "temperature": 0, s.max_tokens_field: 1}
        choice = await self.client.call("chat/completions", body, budget, first_choice)
        content = (choice.get("logprobs") or {}).get("content") or []
        if not content:
            raise NotSupported("the remote returned no logprobs for chat/completions; it cannot "
                               "score in chat-letter mode (use --method generate)")
        top = content[0].get("top_logprobs") or [content[0]]
        letters = [o.strip() for o in task.options]
        values, floored = letter_logprobs(top, letters, s.top_logprobs)
        if floored == len(letters):
            shown = ", ".join(repr(str(t.get("token", ""))) for t in top[:5])
            return Unparsed(f"none of {', '.join(letters)} among the top {len(top)} first tokens "
                            f"(most likely: {shown})")
        if floored:
            log.debug("[%s] %d letters absent from top_logprobs, floored", task.request_id, floored)
        return [OptionScore(logprob_sum=v, num_tokens=1) for v in values]

    def features(self) -> ScoreFeatures:
        return ScoreFeatures(option_texts=False, raw_prompt=False, end_of_turn=False,
                             unsupported={"raw_prompt": RAW_REFUSAL,
                                          "include_end_of_turn": EOT_REFUSAL,
                                          "options": "only single letters can be ranked "
                                                     "(first-token top_logprobs)"})

    def details(self) -> dict[str, str]:
        return {"score_method": "PPL for A/B/C/D (first-token top_logprobs from "
                                "/v1/chat/completions)",
                "letter_floor": f"min(top_logprobs) - ln({self.settings.top_logprobs})"}

    def fingerprint_parts(self) -> list[str]:
        return [str(self.settings.top_logprobs)]


class EchoScoring(ScoringMode):
    """completions-echo: the option's echoed token log-probs after the prompt template."""

    name = "completions-echo"

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.template = self.settings.prompt_template.replace("\\n", "\n")

    def check(self, task: ScoreTask) -> None:
        if task.images and not self.settings.text_only:
            raise NotSupported("score_mode=completions-echo is text only (/v1/completions takes no "
                               "images); set text_only=true to drop images knowingly, or use "
                               "score_mode=chat-letter")

    async def score(self, task: ScoreTask, budget: Budget) -> list[OptionScore]:
        return list(await asyncio.gather(*(self._score(task, o, budget) for o in task.options)))

    async def _score(self, task: ScoreTask, option: str, budget: Budget) -> OptionScore:
        question = task.text.replace(PLACEHOLDER, "") if task.images else task.text
        if task.raw_prompt:  # the request's text is the whole prompt; the option follows directly
            context, full = question, question + option
        else:
            context = self.template.replace("{question}", question)
            full = context + self.settings.option_prefix + option
        body = {"model": self.model, "prompt": full, "echo": True, "logprobs": 1,
                "max_tokens": self.settings.echo_max_tokens, "temperature": 0}

        def read(answer: dict) -> OptionScore:
            lp = first_choice(answer).get("logprobs") or {}
            offsets, token_lps = lp.get("text_offset"), lp.get("token_logprobs")
            if not offsets or not token_lps or len(offsets) != len(token_lps):
                raise NotSupported("the remote did not echo prompt log-probs with text offsets; "
                                   "it cannot score in completions-echo mode")
            return option_span(offsets, token_lps, len(context), len(full))

        return await self.client.call("completions", body, budget, read)

    def features(self) -> ScoreFeatures:
        return ScoreFeatures(end_of_turn=False,
                             unsupported={"include_end_of_turn": EOT_REFUSAL})

    def details(self) -> dict[str, str]:
        return {"score_method": "PPL (option tokens echoed by /v1/completions, text only)",
                "prompt_template": self.template,
                "option_prefix": repr(self.settings.option_prefix),
                "images": "dropped (text only)" if self.settings.text_only else "refused"}

    def fingerprint_parts(self) -> list[str]:
        return [self.template, self.settings.option_prefix, str(self.settings.text_only)]


MODES: dict[str, type[ScoringMode]] = {m.name: m for m in (EchoScoring, LetterScoring)}
