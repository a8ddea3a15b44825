"""Read which option a free-text answer names, or refuse to guess.

One parser for every place that turns generated text into a letter (the
evaluator's `generate` method, the remote backends), so one text is read the
same way everywhere. It returns a letter only when the text names exactly one
option; otherwise `letter` is None and `reason` says why. A wrong guess would
be scored silently as the model's choice; an unparsed answer is counted and
visible, so refusing is the honest default.

Stdlib only: the evaluator (no torch) and the servers both import it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ParsedAnswer:
    letter: str | None  # None: unparsed
    reason: str  # how the letter was read, or why no letter was

    @property
    def parsed(self) -> bool:
        return self.letter is not None


# A letter that stands alone: not inside a word ("it's", "A's", "3-D", "Vitamin"); quotes
# around it are fine ('B').
_END = r"(?![\w-])(?!['’]\w)"
_ALONE = r"(?<![\w-])(?<!\w['’]){L}" + _END
# Words after "A" that show it is the letter, not the article ("A is right").
_VERB_AFTER = (r"is|was|seems|would|should|must|could|might|appears|looks|fits|matches|"
               r"or|and|nor|best|correct|describes")
_ARTICLE_LIKE = {"A", "I"}

# A letter named after a marker: bracketed in any case, bare uppercase, or bare
# lowercase only when nothing word-like follows ("answer: b", not "answer is a dog").
_NAMED = (r"[\"'“‘]?(?:\((?P<p>[A-Za-z])\)|\[(?P<s>[A-Za-z])\]|(?P<u>[A-Z])" + _END
          + r"|(?P<l>[a-z])(?=[\"'”’]?\s*(?:$|[.,;:!?)\]])))")
# More letters joined to a named one: "A or B", "B, C", "A/B", "A and (B)".
_MORE = re.compile(r"\s*(?:,|/|&|\bor\b|\band\b)\s*(?:option\s+|choice\s+)?"
                   r"(?:\((?P<p>[A-Za-z])\)|(?P<u>[A-Z])" + _END + ")")

# Marker words match in any case; the letters keep their case rules (scoped (?i:...) flags).
_ANSWER_MARK = re.compile(
    r"(?i:\banswer\b\s*(?:is|would be|should be|must be|will be)?\s*[:=-]?\s*"
    r"(?:probably\s+|likely\s+|clearly\s+)?(?:option\s+|choice\s+|letter\s+)?)" + _NAMED)
_OPTION_MARK = re.compile(r"(?i:\b(?:option|choice|letter)\s*[:#]?\s*)" + _NAMED)
_BRACKETED = re.compile(r"(?<![\w(])\((?P<p>[A-Za-z])\)|(?<![\w(])(?P<u>[A-Z])\)")
_NEGATED = re.compile(
    r"(?i:(?:\bnot|n['’]t|\bexcept|\brather than|\binstead of|\bnor|\bneither)\s+(?:be\s+)?"
    r"(?:option\s+|choice\s+)?)(?:\((?P<p>[A-Za-z])\)|(?P<u>[A-Z])" + _END + ")")

_WHOLE_LETTER = re.compile(r"^[(\[]?\s*([A-Za-z])\s*[)\]]?\s*[.:,;!]?$")
_LEADING_LETTER = re.compile(
    r"^(?:\((?P<p>[A-Za-z])\)|\[(?P<s>[A-Za-z])\]|(?P<u>[A-Za-z])\s*[.):]|(?P<n>[A-Z])[ \t]*\n)"
    r"\s*(?P<rest>.*)$",
    re.DOTALL)
_LIST_ITEM = re.compile(r"(?m)^\s*(?:\(([A-Za-z])\)|([A-Z])[.)])\s")
_PREAMBLE = re.compile(
    r"^(?:my\s+|the\s+|final\s+)*(?:correct\s+|best\s+|right\s+|final\s+)?"
    r"answer\s*(?:is|would be)?\s*[:=-]?\s*",
    re.IGNORECASE)
_MARKDOWN = re.compile(r"\*\*|__|\*|`+")
_REFUSAL = re.compile(
    r"\b(?:sorry|apologi[sz]e|as an ai|i\s*(?:am|'m|’m)\s+(?:unable|not able)|unable to"
    r"|i\s+(?:cannot|can't|can’t|could not|couldn't|won't|do not know|don't know|don’t know)"
    r"|cannot be determined|can(?:not|'t|’t)\s+(?:determine|tell|answer|say)"
    r"|(?:not|im)possible to|none of the (?:options|choices|above|answers))\b",
    re.IGNORECASE)


def parse_answer(text: str, options: Sequence[str], letters: Sequence[str] | None = None) -> ParsedAnswer:
    """The letter `text` names among `options` (lettered A, B, ... unless `letters` is given)."""
    letters = tuple(letters) if letters is not None else tuple(string.ascii_uppercase[:len(options)])
    if options and len(options) != len(letters):
        raise ValueError(f"{len(options)} options but {len(letters)} letters")
    if any(len(k) != 1 or k not in string.ascii_uppercase for k in letters):
        raise ValueError(f"letters must be single uppercase letters, got {list(letters)}")
    known = set(letters)
    cleaned = _MARKDOWN.sub("", text or "").strip().strip("\"'“”‘’").strip()
    if not cleaned:
        return ParsedAnswer(None, "empty answer")

    by_text = _option_by_text(cleaned, options, letters)
    whole = _WHOLE_LETTER.match(cleaned)
    if whole and whole.group(1).upper() in known:
        letter = whole.group(1).upper()
        if by_text and by_text != letter:
            return ParsedAnswer(None, f"ambiguous: letter {letter} is also option {by_text}'s text")
        return ParsedAnswer(letter, "letter")
    if by_text == _SEVERAL:
        return ParsedAnswer(None, "ambiguous: the text matches several options")
    if by_text:
        return ParsedAnswer(by_text, "option text")

    listed = {(a or b).upper() for a, b in _LIST_ITEM.findall(cleaned)} & known
    lead = _LEADING_LETTER.match(cleaned)
    if lead and len(listed) < 2:
        letter = _letter_of(lead)
        if letter in known:
            rest_letter = _option_by_text(lead.group("rest"), options, letters)
            if rest_letter and rest_letter != letter:
                return ParsedAnswer(None, f"ambiguous: letter {letter} but option {rest_letter}'s text")
            return ParsedAnswer(letter, "leading letter")

    negated = {_letter_of(m) for m in _NEGATED.finditer(cleaned)}
    found = _named(_ANSWER_MARK, cleaned, known)
    if found - negated:
        return _one(found - negated, "answer marker")
    if _REFUSAL.search(cleaned):
        return ParsedAnswer(None, "refusal")
    scan = _without_option_texts(cleaned, options, known)
    for pattern, how in ((_OPTION_MARK, "option marker"), (_BRACKETED, "bracketed letter")):
        found = _named(pattern, scan, known)
        if found - negated:
            return _one(found - negated, how)
    found = _bare_letters(scan, known)
    if found - negated:
        return _one(found - negated, "letter in text")
    if negated & known:
        return ParsedAnswer(None, f"only rules options out ({', '.join(sorted(negated & known))})")
    return ParsedAnswer(None, "no option named")


_SEVERAL = "*"


def _norm(s: str) -> str:
    """Case- and punctuation-insensitive form of a text, for comparing with option texts."""
    return " ".join(re.sub(r"[\W_]+", " ", s.casefold()).split())


def _option_by_text(text: str, options: Sequence[str], letters: Sequence[str]) -> str | None:
    """The letter whose option text the whole answer is (alone or after "The answer is")."""
    candidates = {_norm(text), _norm(_PREAMBLE.sub("", text.strip(), count=1))} - {""}
    normed = [_norm(opt) for opt in options]  # options may be empty: letters only
    hits = {letter for letter, opt in zip(letters, normed, strict=False) if opt and opt in candidates}
    if len(hits) > 1:
        return _SEVERAL
    return next(iter(hits), None)


def _letter_of(m: re.Match) -> str:
    groups = m.groupdict()
    for key in ("p", "s", "u", "l", "n"):
        if groups.get(key):
            return groups[key].upper()
    return ""


def _named(pattern: re.Pattern, text: str, known: set[str]) -> set[str]:
    """Letters named by `pattern`, with the ones joined to them ("A or B")."""
    out: set[str] = set()
    for m in pattern.finditer(text):
        out.add(_letter_of(m))
        pos = m.end()
        while more := _MORE.match(text, pos):
            out.add(_letter_of(more))
            pos = more.end()
    return out & known


def _bare_letters(text: str, known: set[str]) -> set[str]:
    """Uppercase letters standing alone, except "A"/"I" used as words ("A cat is ...")."""
    out = set()
    for m in re.finditer(_ALONE.format(L="([A-Z])"), text):
        letter = m.group(1)
        if letter not in known:
            continue
        if letter in _ARTICLE_LIKE and re.match(rf"\s+(?!(?:{_VERB_AFTER})\b)[A-Za-z]", text[m.end():]):
            continue
        out.add(letter)
    return out


def _without_option_texts(text: str, options: Sequence[str], known: set[str]) -> str:
    """The text with option texts that hold a standalone letter ("Vitamin C") blanked out,
    so an echoed option is not read as that letter."""
    for opt in options:
        opt = opt.strip()
        if len(opt) > 1 and re.search(_ALONE.format(L="[A-Z]"), opt) and any(c in known for c in opt):
            text = re.sub(re.escape(opt), " ", text, flags=re.IGNORECASE)
    return text


def _one(found: set[str], how: str) -> ParsedAnswer:
    if len(found) == 1:
        return ParsedAnswer(next(iter(found)), how)
    return ParsedAnswer(None, f"names several options ({', '.join(sorted(found))})")
