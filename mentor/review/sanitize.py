"""What a generated explanation may show: the student's text, cleaned before any output format sees it.

A small model can echo its prompt, copy the code it read, or repeat an instruction planted in the comment
it rates ("ignore previous instructions and ..."). `clean_explanation` keeps only what explains:
- it stops at anything that looks like the prompt coming back (a `Code:`, `Review:` or `Severity:` line,
  a chat-template marker, a code fence);
- it drops every sentence that copies a run of `QUOTE_WORDS` or more consecutive words from the finding's
  comment or its code, or that is a sentence of theirs repeated whole (a short quote inside a sentence of
  its own stays; a copied instruction or code block does not);
- it drops an unfinished last sentence (generation stopped at `student.max_new_tokens` mid-sentence) when a
  finished one comes before it;
- it removes control characters, joins the rest into one paragraph and clips it to `MAX_CHARS` at a word.
An empty result means the student explained nothing usable: the caller shows the level's definition instead.
Escaping for each output format (markdown, HTML, JSON, SARIF) stays the renderers' job.
"""

from __future__ import annotations

import re

MAX_CHARS = 400  # one to three sentences; longer text is clipped at a word boundary
QUOTE_WORDS = 6  # this many consecutive words copied from the finding make a sentence an echo

_PROMPT_ECHO = re.compile(r"(?im)^\s*(?:code|review|severity|rate this review finding|issue_type)\s*[:?]|<\|?im_(?:start|end)\|?>|```")
_FIELD_PREFIX = re.compile(r"^\s*(?:explanation|why)\s*[:=]\s*", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+")
_FINISHED = re.compile(r"[.!?:)\]\"'`]\s*$")


def clean_explanation(text: str, code: str = "", review: str = "", limit: int = MAX_CHARS) -> str:
    """The explanation as it may be shown ('' when nothing usable is left)."""
    text = _FIELD_PREFIX.sub("", _CONTROL.sub(" ", text or "").replace("\r", "\n"))
    echo = _PROMPT_ECHO.search(text)
    if echo:
        text = text[:echo.start()]
    sources = [f" {' '.join(_words(t))} " for t in (review, code)]
    copied = _ngrams(_words(review)) | _ngrams(_words(code))

    def echoes(sentence: str) -> bool:
        words = _words(sentence)
        whole = len(words) >= 3 and any(f" {' '.join(words)} " in source for source in sources)
        return whole or bool(_ngrams(words) & copied)

    kept = [s.strip() for s in _SENTENCE.split(text) if s.strip() and not echoes(s)]
    if len(kept) > 1 and not _FINISHED.search(kept[-1]):
        kept.pop()
    return _clip(" ".join(" ".join(kept).split()), limit)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _ngrams(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + QUOTE_WORDS]) for i in range(len(words) - QUOTE_WORDS + 1)}


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    return (cut[:cut.rfind(" ")] if " " in cut else cut).rstrip(" ,;:") + "…"
