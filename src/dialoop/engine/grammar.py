"""Grammars (llama.cpp's GBNF) for constrained decoding.

A grammar passed as ``GenerationParams.grammar`` is a contract: every answer the
llamacpp engine produces under it is a prefix of a sentence of the grammar, and a whole
sentence unless it ran out of tokens (finish_reason "length") or hit a stop string.

:func:`json_grammar` makes the grammar for JSON that matches a JSON Schema (OpenAI's
``response_format`` and tool arguments) with llama-cpp-python's own schema converter;
:func:`check_grammar` asks llama.cpp's parser whether a grammar is usable, without a model.

Whitespace is where a small model loses itself: allowed freely between JSON tokens, it
may emit newlines until max_tokens. The grammars here allow at most one space after each
JSON token (the converter's own convention, enforced below whatever its version does),
so the only unbounded parts are the ones the schema leaves unbounded (string contents,
array lengths, additional properties).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from dialoop.errors import InvalidInputError

__all__ = ["MAX_GRAMMAR_CHARS", "check_grammar", "json_grammar"]

log = logging.getLogger(__name__)

MAX_GRAMMAR_CHARS = 256 * 1024

ROOT = "root"
_SPACE_RULE = 'space ::= " "?'  # at most one space after a JSON token
# A character in a JSON string: the converter of llama-cpp-python 0.3 allows raw control
# characters (newlines) there, which is not JSON and lets a model write lines forever.
_CHAR_RULE = r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_ANSWER = "answer"  # the rule name the schema's value gets (``root`` wraps it)


def json_grammar(
    schema: Mapping[str, Any] | None = None, *, prefix: str = "", suffix: str = ""
) -> str:
    """GBNF for one JSON value matching ``schema``, between the literal ``prefix`` and ``suffix``.

    ``None`` or ``{}`` means any JSON object (OpenAI's ``json_object`` mode). Keywords the
    converter does not enforce (``minimum``, ``multipleOf``, …) are not enforced: validate
    the parsed answer if they matter. Raises :class:`InvalidInputError` for a schema that is
    not valid JSON Schema or that the converter cannot turn into a grammar.
    """
    from llama_cpp.llama_grammar import SchemaConverter

    schema = _checked_schema(schema)
    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    try:
        resolved = converter.resolve_refs(schema, "input")
        value_rule = converter.visit(resolved, _ANSWER)
        rules = converter.format_grammar()
    except (AssertionError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        raise InvalidInputError(
            f"This JSON schema cannot be enforced as a grammar ({_short(exc)}): "
            "simplify it (local $refs only, standard types, properties, items, enum, "
            "anyOf/oneOf)."
        ) from None
    rules = re.sub(r"(?m)^space ::= .*$", lambda _: _SPACE_RULE, rules)
    rules = re.sub(r"(?m)^char ::= .*$", lambda _: _CHAR_RULE, rules)
    if not re.search(r"(?m)^space ::= ", rules):
        rules += "\n" + _SPACE_RULE
    body = " ".join(p for p in (_literal(prefix), value_rule, _literal(suffix)) if p)
    gbnf = f"{ROOT} ::= {body}\n{rules}\n"
    check_grammar(gbnf)
    return gbnf


def check_grammar(gbnf: str) -> None:
    """Raise :class:`InvalidInputError` unless llama.cpp can parse ``gbnf`` (rule ``root``).

    Parses with llama.cpp's own parser and no vocabulary (so ``<token>`` literals, which
    need one, are refused here). Results are cached, so checking a grammar again is free.
    """
    if not isinstance(gbnf, str) or not gbnf.strip():
        raise InvalidInputError("A grammar must be a non-empty GBNF string.")
    if len(gbnf) > MAX_GRAMMAR_CHARS:
        raise InvalidInputError(
            f"The grammar has {len(gbnf)} characters; at most {MAX_GRAMMAR_CHARS} are allowed."
        )
    _check_cached(gbnf)


@functools.lru_cache(maxsize=256)
def _check_cached(gbnf: str) -> None:
    if not re.search(rf"(?m)^\s*{ROOT}\s*::=", gbnf):
        raise InvalidInputError(f"The grammar has no '{ROOT}' rule: the answer must match {ROOT}.")
    import llama_cpp

    from dialoop.engine.llamacpp import _route_native_logs

    _route_native_logs(llama_cpp)  # llama.cpp's log lines go to logging
    with _native_stderr() as said:  # the parser itself prints its reason to stderr
        sampler = llama_cpp.llama_sampler_init_grammar(None, gbnf.encode("utf-8"), ROOT.encode())
    if not sampler:
        log.debug("llama.cpp's grammar parser said: %s", said[0])
        reason = re.search(r"error parsing grammar: (.*)", said[0])
        raise InvalidInputError(
            f"llama.cpp cannot parse the grammar ({reason[1] if reason else 'no reason given'}): "
            "check its GBNF syntax (rules `name ::= ...`, quoted literals, [character "
            "classes]) and that no rule is left-recursive."
        )
    llama_cpp.llama_sampler_free(sampler)
    if said[0]:  # not the parser's: someone else's output, passed on
        sys.stderr.write(said[0])


_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _native_stderr() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 meanwhile (microseconds)."""
    said = [""]
    with _stderr_lock, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said[0] = sink.read().decode("utf-8", errors="replace")


def _checked_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """A private, JSON-only copy of ``schema``, checked against the JSON Schema meta-schema."""
    if schema is None:
        return {}
    if not isinstance(schema, Mapping):
        raise InvalidInputError(
            f"A JSON schema must be an object (a mapping), got {type(schema).__name__}."
        )
    try:
        plain = json.loads(json.dumps(copy.deepcopy(dict(schema))))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"The JSON schema is not plain JSON: {exc}") from None
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(plain)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the top level"
        raise InvalidInputError(
            f"The JSON schema is not valid JSON Schema at {where}: {exc.message}"
        ) from None
    return plain


_LITERAL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _literal(text: str) -> str:
    """``text`` as a GBNF string literal ("" for no text)."""
    if not text:
        return ""
    out = []
    for ch in text:
        if ch in _LITERAL_ESCAPES:
            out.append(_LITERAL_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"
