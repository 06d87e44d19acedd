"""Python source as `ruff format` lays it out (line length 100), for generated modules.

A small expression tree (literals, calls, brackets, keyword arguments) is written on one line
when it fits, else split the way the formatter splits it: a bracket one item per line with a
trailing comma (which keeps it split), a long str or bytes literal as parenthesized parts. So the
text `proxy.control.export` generates passes `ruff format --check` as it is.

>>> print("\\n".join(render(Call("f", [Lit(b"x" * 60), Keyword("y", Lit("z" * 40))]), 0, "a = ")))
a = f(
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    y="zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 100


@dataclass(frozen=True)
class Lit:
    """A str or bytes literal."""

    value: str | bytes


@dataclass(frozen=True)
class Raw:
    text: str


@dataclass(frozen=True)
class Call:
    function: str
    arguments: Sequence[Expression]
    explode: bool = False  # one argument per line, even when it would fit on one


@dataclass(frozen=True)
class Seq:
    """A list `[...]`, or a tuple `(...)` of at least two items (one item would be no tuple)."""

    opening: str
    closing: str
    items: Sequence[Expression]
    explode: bool = False


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expression


Expression = Lit | Raw | Call | Seq | Keyword


def flat(expression: Expression) -> str:
    if isinstance(expression, Lit):
        return literal(expression.value)
    if isinstance(expression, Raw):
        return expression.text
    if isinstance(expression, Keyword):
        return f"{expression.name}={flat(expression.value)}"
    inner = ", ".join(flat(item) for item in items_of(expression))
    return f"{opening_of(expression)}{inner}{closing_of(expression)}"


def render(expression: Expression, indent: int, prefix: str = "", suffix: str = "") -> list[str]:
    """The lines of `prefix expression suffix` at `indent`, split as ruff format splits them."""
    pad = " " * indent
    if isinstance(expression, Keyword):
        return render(expression.value, indent, f"{prefix}{expression.name}=", suffix)
    one_line = f"{pad}{prefix}{flat(expression)}{suffix}"
    fits = len(one_line) <= WIDTH
    if isinstance(expression, Raw) or (
        isinstance(expression, Lit) and (fits or not expression.value)
    ):
        return [one_line]
    if isinstance(expression, Lit):
        parts = split_literal(expression.value, WIDTH - indent - 4)
        return [f"{pad}{prefix}(", *(f"{pad}    {part}" for part in parts), f"{pad}){suffix}"]
    items = items_of(expression)
    if not items or (fits and not expression.explode):
        return [one_line]
    lines = [f"{pad}{prefix}{opening_of(expression)}"]
    for item in items:
        lines.extend(render(item, indent + 4, "", ","))
    return [*lines, f"{pad}{closing_of(expression)}{suffix}"]


def items_of(expression: Call | Seq) -> Sequence[Expression]:
    return expression.arguments if isinstance(expression, Call) else expression.items


def opening_of(expression: Call | Seq) -> str:
    return f"{expression.function}(" if isinstance(expression, Call) else expression.opening


def closing_of(expression: Call | Seq) -> str:
    return ")" if isinstance(expression, Call) else expression.closing


def literal(value: str | bytes) -> str:
    """A Python literal as ruff format writes it: double quotes unless the value holds more
    double quotes than single ones, lower-case hex escapes.

    >>> print(literal(b'{"a": 1}'), literal("it's"), literal(b"\\x00\\xff\\n"))
    b'{"a": 1}' "it's" b"\\x00\\xff\\n"
    """
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    quote = "'" if text.count('"') > text.count("'") else '"'
    body = "".join(escape(char, quote) for char in text)
    return f"{'b' if isinstance(value, bytes) else ''}{quote}{body}{quote}"


ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(char: str, quote: str) -> str:
    """One character inside a literal: printable ASCII as itself, the rest escaped."""
    if char in ESCAPES or char == quote:
        return ESCAPES.get(char, "\\" + char)
    if " " <= char <= "~":
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def split_literal(value: str | bytes, width: int) -> list[str]:
    """`value` as literals of at most `width` characters each (at least one character each).

    Each part's length is kept for both quotes as it grows, since ruff picks each part's quotes.
    """
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    extra = 3 if isinstance(value, bytes) else 2  # the prefix and the quotes
    parts: list[str] = []
    start = 0
    while start < len(text) or not parts:
        end, doubles, singles, lengths = start, 0, 0, [0, 0]  # in "…" and in '…'
        while end < len(text):
            char = text[end]
            grown = doubles + (char == '"'), singles + (char == "'")
            sizes = [lengths[0] + len(escape(char, '"')), lengths[1] + len(escape(char, "'"))]
            if end > start and extra + sizes[grown[0] > grown[1]] > width:
                break
            (doubles, singles), lengths, end = grown, sizes, end + 1
        parts.append(literal(value[start:end]))
        start = end
    return parts
