"""Reading what a graded kernel sends, with bounded size, depth and numbers.

Everything here is the trainee's to shape: an answer displayed as a 5,000-digit number makes
``json.loads`` raise ``ValueError`` (Python's integer-string limit), one nested 100,000 deep
makes it (and ``json.dumps``, ``copy.deepcopy``, ``nbformat.write``) raise
``RecursionError``. So no value from a kernel is parsed or kept without these checks, and
none of them recurses.

Invariant: :func:`loads` and :func:`problem` never raise anything but :class:`BadValue`
(``loads``) and never recurse; a value :func:`problem` passes can be written as JSON.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64
"""Nesting of lists and mappings kept (answers are numbers, short lists and small tables)."""
MAX_DIGITS = 100
"""Digits of an integer kept (beyond them: not an answer, and not writable as JSON)."""
_BIG = 10**MAX_DIGITS


class BadValue(ValueError):
    """A value from a kernel the grader does not keep; the message is the trainee's reason."""


def measure(value: Any) -> tuple[int, int]:
    """(approximate size in bytes, nesting depth) of ``value``, without recursing."""
    size, deepest = 0, 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            size += 2
            for key, inner in item.items():
                size += len(key) + 4 if isinstance(key, str) else 8
                stack.append((inner, depth + 1))
        elif isinstance(item, list | tuple):
            size += 2
            stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str | bytes):
            size += len(item) + 2
        else:
            size += 8
    return size, deepest


def problem(value: Any, limit: int) -> str | None:
    """Why ``value`` (parsed already) is not kept, or None: too big, too deep, or holding
    an integer too long to write."""
    size, depth = measure(value)
    if size > limit:
        return f"larger than {limit // 1024} KiB"
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, int) and not -_BIG < item < _BIG:
            return f"holds an integer of more than {MAX_DIGITS} digits"
    return None


def _nesting(text: str) -> int:
    """The deepest bracket nesting of JSON ``text`` (brackets inside strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise BadValue(f"holds an integer of more than {MAX_DIGITS} digits")
    return int(text)


def loads(text: str | bytes, limit: int) -> Any:
    """JSON ``text`` parsed, or :class:`BadValue` saying why not."""
    if len(text) > limit:
        raise BadValue(f"larger than {limit // 1024} KiB")
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise BadValue("not UTF-8 text") from None
    # counting brackets first is cheap; scanning strings only when there are many of them
    if text.count("[") + text.count("{") > MAX_DEPTH and _nesting(text) > MAX_DEPTH:
        raise BadValue(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_integer)
    except BadValue:
        raise
    except (ValueError, RecursionError, MemoryError) as exc:
        raise BadValue(f"not valid JSON ({type(exc).__name__})") from None


def _text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: JSON can carry them, UTF-8 cannot
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def scrub(value: Any) -> Any:
    """``value`` with every text in it (keys too) made writable as UTF-8, in place where it
    is a mapping or list: a lone surrogate (``"\\ud800"`` in JSON, which a kernel or a
    submission can send) becomes U+FFFD. Writing it would raise ``UnicodeEncodeError``
    wherever the grader writes (the graded notebook, the results store), for the cohort."""
    if isinstance(value, str):
        return _text(value)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in list(item):
                inner = item[key]
                if isinstance(inner, str):
                    item[key] = _text(inner)
                else:
                    stack.append(inner)
                if isinstance(key, str) and _text(key) != key:
                    item[_text(key)] = item.pop(key)
        elif isinstance(item, list):
            for index, inner in enumerate(item):
                if isinstance(inner, str):
                    item[index] = _text(inner)
                else:
                    stack.append(inner)
    return value
