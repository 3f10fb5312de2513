"""Numbers and words as the prose writes them.

Percentages (:func:`pct`), whole numbers in words (:func:`count_word`), ordinals, ranges
(:func:`span`), learning rates (:func:`lr_text`), lists (:data:`join`) and the small grammar
of one entry or several that every fragment of :mod:`angio.study.prose` shares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from angio.study import zoo_tables

__all__ = ["join", "pct", "count_word", "ordinal", "span", "lr_text"]

_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
          "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

join = zoo_tables.join_and


def pct(x: float, digits: int = 1) -> str:
    """A fraction as the prose writes a percentage: ``0.5243`` -> ``"52.4%"``."""
    return f"{100 * x:.{digits}f}%"


def count_word(n: int, *, capital: bool = False) -> str:
    """A whole number below 100 in words (``46`` -> ``"forty-six"``); larger ones as digits."""
    if 0 <= n < 20:
        word = _WORDS[n]
    elif 20 <= n < 100:
        word = _TENS[n // 10] + ("-" + _WORDS[n % 10] if n % 10 else "")
    else:
        word = f"{n:,}"
    return word[0].upper() + word[1:] if capital else word


def ordinal(n: int) -> str:
    """``1`` -> ``"1st"``, ``12`` -> ``"12th"``, ``22`` -> ``"22nd"``."""
    suffix = "th" if 10 <= n % 100 < 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def span(values: Iterable[float], fmt: Callable[[float], str] = "{:.2f}".format, sep: str = " to ") -> str:
    """The range of ``values`` as text: ``"0.15 to 0.30"``, or one value where both ends read the same."""
    values = list(values)
    lo, hi = fmt(min(values)), fmt(max(values))
    return lo if lo == hi else f"{lo}{sep}{hi}"


def lr_text(lr: float) -> str:
    """A learning rate as the prose writes it: ``0.0001`` -> ``"1e-4"``, ``0.0005`` -> ``"5e-4"``."""
    mantissa, exponent = f"{lr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}" if float(f"{lr:.0e}") == lr else f"{lr:g}"


def _many(n: int, one: str, several: str) -> str:
    return one if n == 1 else several


def _hyphenated(views: Sequence[int], noun: str) -> str:
    """``[90, 46, 5]`` -> ``"90-, 46- and 5-view runs"``; ``[90]`` -> ``"90-view run"``."""
    label = join([f"{n}-" for n in views[:-1]] + [f"{views[-1]}-view"])
    return f"{label} {noun}" + ("" if len(views) == 1 else "s")


def _points(x: float, signed: bool = False) -> str:
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f}"

