"""Kubernetes ``resource.Quantity`` strings: exact parsing and canonical formatting.

Grammar (``k8s.io/apimachinery/pkg/api/resource``)::

    <quantity>        ::= <signedNumber><suffix>
    <signedNumber>    ::= <number> | <sign><number>
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedDigits> | "E" <signedDigits>

Values are :class:`decimal.Decimal` so nothing is lost between parsing and formatting. Formatting follows the
canonical decimal-SI form the API server writes: an integer mantissa and the largest SI suffix that keeps it
an integer (``0.5`` → ``"500m"``, ``1500`` → ``"1500"``, ``2000`` → ``"2k"``, ``2.5e6`` → ``"2500k"``), with
values rounded up to whole nano-units like Kubernetes does when it must drop precision.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation, localcontext

__all__ = ["QuantityError", "format_quantity", "parse_quantity"]

_DECIMAL_SI: dict[str, int] = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SI: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_SUFFIX_BY_EXP: dict[int, str] = {v: k for k, v in _DECIMAL_SI.items()}

_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_QUANTITY_RE = re.compile(
    rf"^(?P<num>{_NUMBER})(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exp>[+-]?[0-9]+)|(?P<dec>[numkMGTPE]?))$"
)
# Beyond this the number would not fit Kubernetes' int64-scaled or inf.Dec representation usefully.
_MAX_EXPONENT_DIGITS = 4
_NANO = Decimal("1e-9")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity, or a number that cannot be written as one."""


def parse_quantity(text: str) -> Decimal:
    """Parse a quantity string (``"1500m"``, ``"2Gi"``, ``"1e3"``, ``"+.5"``) into an exact Decimal.

    Raises:
        QuantityError: ``text`` does not match the Kubernetes quantity grammar; the message says what was
            expected.
    """
    match = _QUANTITY_RE.match(text)
    if match is None:
        raise QuantityError(
            f"quantity {text!r} must match '<number><suffix>' with suffix one of n, u, m, k, M, G, T, P, E, "
            "Ki, Mi, Gi, Ti, Pi, Ei or e<exponent>"
        )
    number = Decimal(match["num"])
    if match["bin"]:
        return number * Decimal(2 ** _BINARY_SI[match["bin"]])
    if match["exp"] is not None:
        digits = match["exp"].lstrip("+-")
        if len(digits.lstrip("0")) > _MAX_EXPONENT_DIGITS:
            raise QuantityError(f"quantity {text!r} has an exponent out of range")
        return number.scaleb(int(match["exp"]))
    return number.scaleb(_DECIMAL_SI[match["dec"] or ""])


def format_quantity(value: float | int | Decimal) -> str:
    """Canonical decimal-SI quantity string for ``value`` (rounded up to a whole nano-unit).

    Examples: ``0`` → ``"0"``, ``0.25`` → ``"250m"``, ``1.5`` → ``"1500m"``, ``12`` → ``"12"``,
    ``3000`` → ``"3k"``, ``2_500_000`` → ``"2500k"``, ``-0.001`` → ``"-1m"``, ``1e-10`` → ``"1n"``.
    Floats are first rounded to 15 significant digits, the precision a double carries.

    Raises:
        QuantityError: ``value`` is NaN or infinite (a quantity cannot say "unknown").
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise QuantityError(f"cannot format {value!r} as a quantity: not a finite number")
    # 15 significant digits is what a double holds exactly; more would print binary noise (0.1 + 0.2).
    dec = Decimal(format(value, ".15g")) if isinstance(value, float) else Decimal(value)
    if not dec.is_finite():
        raise QuantityError(f"cannot format {value!r} as a quantity: not a finite number")
    with localcontext() as ctx:
        ctx.prec = 60
        try:
            nanos = (dec / _NANO).to_integral_value(rounding=ROUND_CEILING)
        except InvalidOperation as exc:  # pragma: no cover - only for absurd exponents
            raise QuantityError(f"cannot format {value!r} as a quantity: out of range") from exc
    mantissa = int(nanos)
    if mantissa == 0:
        return "0"
    exp = -9
    # Move whole factors of 1000 into the suffix while the mantissa stays an integer (up to exa).
    while exp < 18 and mantissa % 1000 == 0:
        mantissa //= 1000
        exp += 3
    return f"{mantissa}{_SUFFIX_BY_EXP[exp]}"
