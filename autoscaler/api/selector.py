"""Kubernetes label selectors: parse the string form, validate keys and values, and match label sets.

The syntax is that of ``k8s.io/apimachinery/pkg/labels.Parse``: comma-separated requirements, each one of

====================  ======================================================
``key``               the label exists
``!key``              the label does not exist
``key=value``         equal (also ``key==value``)
``key!=value``        not equal, or the label is absent
``key in (a,b)``      the value is one of the set
``key notin (a,b)``   the value is none of the set, or the label is absent
``key>3``/``key<3``   the value is an integer greater / less than the number
====================  ======================================================

An empty selector matches everything. Keys are ``[prefix/]name`` where the prefix is a DNS-1123 subdomain
(≤ 253 characters) and the name ≤ 63 characters of ``[A-Za-z0-9._-]`` starting and ending alphanumeric;
values are empty or follow the name rule. Anything else raises :class:`SelectorError` naming the position.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Operator",
    "Requirement",
    "Selector",
    "SelectorError",
    "parse_selector",
    "validate_label_key",
    "validate_label_value",
]

_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INT_RE = re.compile(r"^[+-]?[0-9]+$")


class SelectorError(ValueError):
    """A label selector that does not parse or names an invalid key or value."""


class Operator(StrEnum):
    """Requirement operators, spelled as in the string form (``==`` is normalised to ``=``)."""

    EXISTS = "exists"
    NOT_EXISTS = "!"
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    GREATER = ">"
    LESS = "<"


def validate_label_key(key: str) -> None:
    """Raise :class:`SelectorError` unless ``key`` is a valid qualified label key."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            raise SelectorError(f"label key {key!r}: prefix before '/' must not be empty")
        if len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.match(prefix):
            raise SelectorError(
                f"label key {key!r}: prefix must be a DNS-1123 subdomain (lower-case alphanumerics, '-' "
                "and '.', at most 253 characters)"
            )
    if not name:
        raise SelectorError(f"label key {key!r}: name must not be empty")
    if len(name) > 63 or not _NAME_RE.match(name):
        raise SelectorError(
            f"label key {key!r}: name must be at most 63 characters of [A-Za-z0-9._-], starting and ending "
            "with an alphanumeric"
        )


def validate_label_value(value: str) -> None:
    """Raise :class:`SelectorError` unless ``value`` is a valid label value (empty is valid)."""
    if value and (len(value) > 63 or not _NAME_RE.match(value)):
        raise SelectorError(
            f"label value {value!r}: must be empty or at most 63 characters of [A-Za-z0-9._-], starting and "
            "ending with an alphanumeric"
        )


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement of a selector: ``key``, an operator and its values (sorted, deduplicated)."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this requirement."""
        present = self.key in labels
        value = labels.get(self.key, "")
        op = self.operator
        if op is Operator.EXISTS:
            return present
        if op is Operator.NOT_EXISTS:
            return not present
        if op in (Operator.EQUALS, Operator.IN):
            return present and value in self.values
        if op in (Operator.NOT_EQUALS, Operator.NOT_IN):
            return not present or value not in self.values
        # > and <: the label must hold an integer, compared numerically (as Kubernetes does).
        if not present or not _INT_RE.match(value):
            return False
        bound = int(self.values[0])
        return int(value) > bound if op is Operator.GREATER else int(value) < bound

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.NOT_EXISTS:
            return f"!{self.key}"
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({','.join(self.values)})"
        return f"{self.key}{op.value}{self.values[0]}"


@dataclass(frozen=True, slots=True)
class Selector:
    """A conjunction of requirements; the empty selector matches every label set."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfies every requirement."""
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# --- lexer -----------------------------------------------------------------------------------------------

_SPECIAL = "!=,()<>"
_WS = " \t\n\r\f\v"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "ident", "!", "=", "==", "!=", ",", "(", ")", "<", ">", "end"
    text: str
    pos: int


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _WS:
            i += 1
            continue
        if ch in _SPECIAL:
            two = text[i : i + 2]
            if two in ("==", "!="):
                tokens.append(_Token(two, two, i))
                i += 2
            else:
                tokens.append(_Token(ch, ch, i))
                i += 1
            continue
        start = i
        while i < n and text[i] not in _WS and text[i] not in _SPECIAL:
            i += 1
        tokens.append(_Token("ident", text[start:i], start))
    tokens.append(_Token("end", "", n))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok: _Token, expected: str) -> SelectorError:
        found = "end of selector" if tok.kind == "end" else repr(tok.text)
        return SelectorError(
            f"label selector {self.text!r}: at position {tok.pos}: expected {expected}, found {found}"
        )

    def selector(self) -> Selector:
        if self.peek().kind == "end":
            return Selector()
        reqs = [self.requirement()]
        while True:
            tok = self.take()
            if tok.kind == "end":
                return Selector(tuple(reqs))
            if tok.kind != ",":
                raise self.fail(tok, "',' or end of selector")
            reqs.append(self.requirement())

    def key(self) -> str:
        tok = self.take()
        if tok.kind != "ident":
            raise self.fail(tok, "a label key")
        validate_label_key(tok.text)
        return tok.text

    def value(self) -> str:
        tok = self.peek()
        if tok.kind != "ident":
            return ""  # "key=" selects the empty value, as in Kubernetes
        self.take()
        validate_label_value(tok.text)
        return tok.text

    def requirement(self) -> Requirement:
        if self.peek().kind == "!":
            self.take()
            return Requirement(self.key(), Operator.NOT_EXISTS)
        key = self.key()
        tok = self.peek()
        if tok.kind in ("end", ","):
            return Requirement(key, Operator.EXISTS)
        self.take()
        if tok.kind in ("=", "=="):
            return Requirement(key, Operator.EQUALS, (self.value(),))
        if tok.kind == "!=":
            return Requirement(key, Operator.NOT_EQUALS, (self.value(),))
        if tok.kind in ("<", ">"):
            num = self.take()
            if num.kind != "ident" or not _INT_RE.match(num.text):
                raise self.fail(num, f"an integer after '{tok.kind}'")
            return Requirement(key, Operator(tok.kind), (str(int(num.text)),))
        if tok.kind == "ident" and tok.text in ("in", "notin"):
            return Requirement(key, Operator(tok.text), self.value_set())
        raise self.fail(tok, "one of '=', '==', '!=', 'in', 'notin', '<', '>', ',' or end of selector")

    def value_set(self) -> tuple[str, ...]:
        tok = self.take()
        if tok.kind != "(":
            raise self.fail(tok, "'(' starting a value set")
        values = {self.value()}
        while True:
            tok = self.take()
            if tok.kind == ")":
                break
            if tok.kind != ",":
                raise self.fail(tok, "',' or ')' in a value set")
            values.add(self.value())
        # "key in ()" is the set holding only the empty value, exactly as Kubernetes reads it.
        return tuple(sorted(values))


def parse_selector(text: str) -> Selector:
    """Parse the string form of a label selector.

    Raises:
        SelectorError: the syntax is wrong or a key/value is invalid; the message names the position and
            what was expected.
    """
    return _Parser(text).selector()
