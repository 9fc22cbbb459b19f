"""Split Cedar policy text into one chunk per policy, remembering where each starts.

Cedar's parser reports no positions, so the loader parses each policy on its own and names
the file and line where it starts. A policy ends at a ``;`` outside strings and ``//``
comments; text after the last ``;`` that is not blank or a comment is a chunk of its own
(an unterminated policy, which then fails to parse and is reported at its line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ID_ANNOTATION = re.compile(r'@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)')


@dataclass(frozen=True)
class PolicyChunk:
    """One policy's source text and the 1-based line where its first token stands."""

    text: str
    line: int

    def guess_id(self) -> str:
        """The ``@id`` annotation read textually (for error messages when parsing fails)."""
        found = _ID_ANNOTATION.search(self.text)
        return found.group(1) if found else ""


def split_policies(text: str) -> list[PolicyChunk]:
    """Split ``text`` into policy chunks; comments and blank space between policies vanish."""
    chunks: list[PolicyChunk] = []
    first_token: int | None = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if ch.isspace():
            i += 1
            continue
        if first_token is None:
            first_token = i
        if ch == '"':
            i = _skip_string(text, i)
            continue
        if ch == ";":
            chunks.append(_chunk(text, first_token, i + 1))
            first_token = None
        i += 1
    if first_token is not None:
        chunks.append(_chunk(text, first_token, n))
    return chunks


def _skip_string(text: str, i: int) -> int:
    """Index just past the string literal opening at ``i`` (or the end of an unclosed one)."""
    j = i + 1
    n = len(text)
    while j < n:
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == '"':
            return j + 1
        j += 1
    return n


def _chunk(text: str, begin: int, end: int) -> PolicyChunk:
    return PolicyChunk(text=text[begin:end], line=text.count("\n", 0, begin) + 1)
