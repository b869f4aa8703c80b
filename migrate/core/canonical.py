"""Canonical JSON (RFC 8785, JSON Canonicalization Scheme), written for the journal's hashes.

The rule, as docs/journal-format.md states it for anyone verifying without this code:
objects with keys sorted by their UTF-16 code units, no whitespace, strings escaped only where
JSON requires it (``"`` ``\\`` and control characters, with the short forms \\b \\t \\n \\f \\r
and \\u00xx in lower case otherwise), everything else as UTF-8, and numbers as ECMAScript's
``Number.prototype.toString`` writes them (shortest round-trip digits; 1.0 is ``1``; exponent
form below 1e-6 and from 1e21). Integers are written in full decimal; migrate never journals
one beyond +-2**53, where a double could not hold it and JCS would differ.
"""

from __future__ import annotations

import math
from typing import Any

SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n",
                 "\f": "\\f", "\r": "\\r"}


class NotCanonical(ValueError):
    """A value JSON (and so JCS) cannot hold: NaN, infinity, a non-string key, a lone
    surrogate, or a type that is not JSON."""


def canonical_json(value: Any) -> bytes:
    """``value`` in RFC 8785 form, as UTF-8 bytes."""
    try:
        return _serialise(value).encode("utf-8")
    except UnicodeEncodeError as error:
        raise NotCanonical(f"a string holds a lone surrogate: {error}") from None


def _serialise(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_serialise(v) for v in value) + "]"
    if isinstance(value, dict):
        return _serialise_object(value)
    raise NotCanonical(f"{type(value).__name__} is not a JSON value")


def _serialise_object(value: dict) -> str:
    if not all(isinstance(k, str) for k in value):
        raise NotCanonical("an object key is not a string")
    keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
    return "{" + ",".join(f"{quote(k)}:{_serialise(value[k])}" for k in keys) + "}"


def quote(text: str) -> str:
    parts = ['"']
    for char in text:
        if char in SHORT_ESCAPES:
            parts.append(SHORT_ESCAPES[char])
        elif char < " ":
            parts.append(f"\\u{ord(char):04x}")
        else:
            parts.append(char)
    parts.append('"')
    return "".join(parts)


def format_number(number: float) -> str:
    """A double as ECMAScript writes it (ECMA-262, Number::toString, radix 10)."""
    if not math.isfinite(number):
        raise NotCanonical(f"{number} is not a JSON number")
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    digits, exponent = _shortest_digits(abs(number))
    # value = 0.d1d2...dk * 10**point, the n of ECMA-262
    k, point = len(digits), exponent + len(digits)
    if k <= point <= 21:
        body = digits + "0" * (point - k)
    elif 0 < point <= 21:
        body = f"{digits[:point]}.{digits[point:]}"
    elif -6 < point <= 0:
        body = "0." + "0" * -point + digits
    else:
        power = point - 1
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        body = f"{mantissa}e{'+' if power >= 0 else '-'}{abs(power)}"
    return sign + body


def _shortest_digits(number: float) -> tuple[str, int]:
    """The shortest decimal digits that read back as ``number`` (Python's repr finds them,
    correctly rounded as ECMAScript requires), and the exponent of their last digit."""
    mantissa, _, power = repr(number).partition("e")
    whole, _, fraction = mantissa.partition(".")
    fraction = fraction.rstrip("0")
    digits = (whole + fraction).lstrip("0")
    exponent = int(power or 0) - len(fraction)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    return stripped, exponent
