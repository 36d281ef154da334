"""Kubernetes Quantity and label-selector handling: table tests and hypothesis round trips."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.api.quantity import QuantityError, format_quantity, parse_quantity
from autoscaler.api.selector import Operator, Requirement, Selector, SelectorError, parse_selector

# --- Quantity ---------------------------------------------------------------------------------------------

# Canonical forms as the API server writes them (apimachinery quantity_test.go, decimal SI).
FORMAT_TABLE = [
    (0, "0"), (1, "1"), (12, "12"), (0.5, "500m"), (1.5, "1500m"), (0.001, "1m"), (0.0001, "100u"),
    (1e-9, "1n"), (1e-10, "1n"), (1000, "1k"), (1500, "1500"), (2_500_000, "2500k"), (1e6, "1M"),
    (1e9, "1G"), (1e12, "1T"), (1e15, "1P"), (1e18, "1E"), (1e21, "1000E"), (-0.001, "-1m"), (-3000, "-3k"),
    (0.1 + 0.2, "300m"), (123.456, "123456m"), (Decimal("0.0000000015"), "2n"),
]


@pytest.mark.parametrize(("value", "text"), FORMAT_TABLE)
def test_format_quantity_canonical(value: float, text: str) -> None:
    assert format_quantity(value) == text


PARSE_TABLE = [
    ("0", "0"), ("1", "1"), ("1500m", "1.5"), ("100u", "0.0001"), ("5n", "0.000000005"), ("2k", "2000"),
    ("1M", "1000000"), ("1G", "1e9"), ("1E", "1e18"), ("1Ki", "1024"), ("1Mi", "1048576"), ("1.5Gi", "1610612736"),
    ("1Ei", str(2**60)), ("1e3", "1000"), ("1E3", "1000"), ("1e-3", "0.001"), ("1E+2", "100"), ("+.5", "0.5"),
    ("-.5m", "-0.0005"), ("5.", "5"), ("0.1", "0.1"), ("-12Ki", "-12288"),
]


@pytest.mark.parametrize(("text", "value"), PARSE_TABLE)
def test_parse_quantity(text: str, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", " 1", "1 ", "1.2.3", "1Kb", "1ki", "K", "e3", "1e", "1e1.5", "--1", "1mm",
                                  ".", "+", "1e99999", "0x10", "1_000", "∞"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(QuantityError, match="quantity"):
        parse_quantity(text)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_format_quantity_rejects_non_finite(value: float) -> None:
    with pytest.raises(QuantityError, match="finite"):
        format_quantity(value)


@given(st.integers(min_value=-(10**30), max_value=10**30), st.integers(min_value=-9, max_value=9))
def test_quantity_round_trip_exact_decimals(mantissa: int, exp: int) -> None:
    value = Decimal(mantissa).scaleb(exp)
    text = format_quantity(value)
    back = parse_quantity(text)
    assert back == value  # within nano precision nothing is lost
    assert format_quantity(back) == text  # canonical form is a fixed point


@given(st.floats(min_value=-1e20, max_value=1e20, allow_nan=False))
def test_quantity_round_trip_floats_within_a_nano(value: float) -> None:
    back = parse_quantity(format_quantity(value))
    assert abs(float(back) - value) <= 1e-9 + abs(value) * 1e-14
    assert back >= Decimal(format(value, ".15g"))  # rounded up, never down (HPA must not under-scale)


# --- label selectors --------------------------------------------------------------------------------------

SELECTOR_TABLE = [
    ("", [], True),
    ("a=b", [("a", Operator.EQUALS, ("b",))], True),
    ("a==b", [("a", Operator.EQUALS, ("b",))], True),
    ("a!=b", [("a", Operator.NOT_EQUALS, ("b",))], False),
    ("a in (b, c)", [("a", Operator.IN, ("b", "c"))], True),
    ("a notin (b)", [("a", Operator.NOT_IN, ("b",))], False),
    ("zz notin (b)", [("zz", Operator.NOT_IN, ("b",))], True),
    ("a", [("a", Operator.EXISTS, ())], True),
    ("!a", [("a", Operator.NOT_EXISTS, ())], False),
    ("!zz", [("zz", Operator.NOT_EXISTS, ())], True),
    ("n>3", [("n", Operator.GREATER, ("3",))], True),
    ("n<3", [("n", Operator.LESS, ("3",))], False),
    ("a=", [("a", Operator.EQUALS, ("",))], False),
    ("e=", [("e", Operator.EQUALS, ("",))], True),
    ("  a = b ,  n  ", [("a", Operator.EQUALS, ("b",)), ("n", Operator.EXISTS, ())], True),
    ("example.com/x-y_z.1=v.1-2_3", [("example.com/x-y_z.1", Operator.EQUALS, ("v.1-2_3",))], False),
    ("in=notin", [("in", Operator.EQUALS, ("notin",))], False),
    ("e in ()", [("e", Operator.IN, ("",))], True),
]
LABELS = {"a": "b", "n": "10", "e": ""}


@pytest.mark.parametrize(("text", "reqs", "matches"), SELECTOR_TABLE)
def test_parse_selector_table(text: str, reqs: list[tuple[str, Operator, tuple[str, ...]]], matches: bool) -> None:
    sel = parse_selector(text)
    assert sel == Selector(tuple(Requirement(*r) for r in reqs))
    assert sel.matches(LABELS) is matches


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a=b c", "position 4"), ("=b", "expected a label key"),
        ("a in (b", "',' or ')'"), ("a in b", "'('"), ("a=b,", "expected a label key"), ("a>b", "integer"),
        ("-a=b", "label key '-a'"), ("a=-b", "label value '-b'"), ("A.COM/b=c", "DNS-1123"),
        ("/b=c", "prefix"), ("a/=c", "name must not be empty"), ("a=" + "x" * 64, "at most 63"),
        ("k" * 64, "at most 63"), ("a,,b", "expected a label key"), ("a b", "expected one of"),
        ("a!b", "expected one of"), ("a=(b)", "expected ',' or end"),
    ],
)
def test_parse_selector_errors_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(SelectorError) as exc:
        parse_selector(text)
    assert fragment in str(exc.value)


_name = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?", fullmatch=True)
_prefix = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?(\.[a-z0-9]{1,5}){0,2}", fullmatch=True)
_key = st.one_of(_name, st.builds(lambda p, n: f"{p}/{n}", _prefix, _name))
_value = st.one_of(st.just(""), _name)
_requirement = st.one_of(
    st.builds(lambda k: Requirement(k, Operator.EXISTS), _key),
    st.builds(lambda k: Requirement(k, Operator.NOT_EXISTS), _key),
    st.builds(lambda k, v: Requirement(k, Operator.EQUALS, (v,)), _key, _value),
    st.builds(lambda k, v: Requirement(k, Operator.NOT_EQUALS, (v,)), _key, _value),
    st.builds(lambda k, vs: Requirement(k, Operator.IN, tuple(sorted(vs))), _key,
              st.sets(_value, min_size=1, max_size=4)),
    st.builds(lambda k, vs: Requirement(k, Operator.NOT_IN, tuple(sorted(vs))), _key,
              st.sets(_value, min_size=1, max_size=4)),
    st.builds(lambda k, n: Requirement(k, Operator.GREATER, (str(n),)), _key, st.integers(-1000, 1000)),
    st.builds(lambda k, n: Requirement(k, Operator.LESS, (str(n),)), _key, st.integers(-1000, 1000)),
)
_selector = st.builds(lambda rs: Selector(tuple(rs)), st.lists(_requirement, max_size=5))


@given(_selector)
def test_selector_string_round_trip(sel: Selector) -> None:
    assert parse_selector(str(sel)) == sel


@given(_selector, st.dictionaries(_key, _value, max_size=6))
def test_selector_matches_is_the_conjunction_of_its_requirements(sel: Selector, labels: dict[str, str]) -> None:
    assert sel.matches(labels) == all(Selector((r,)).matches(labels) for r in sel.requirements)
    # Negations partition the label sets: exactly one of "=" and "!=" holds for every label set.
    for r in sel.requirements:
        if r.operator is Operator.EQUALS:
            neg = Requirement(r.key, Operator.NOT_EQUALS, r.values)
            assert r.matches(labels) != neg.matches(labels)
        if r.operator is Operator.IN:
            neg = Requirement(r.key, Operator.NOT_IN, r.values)
            assert r.matches(labels) != neg.matches(labels)


@given(st.text(max_size=60))
def test_parse_selector_never_fails_with_anything_but_selector_error(text: str) -> None:
    try:
        sel = parse_selector(text)
    except SelectorError:
        return
    assert parse_selector(str(sel)) == sel
