"""proxy.control.pysource: expressions laid out as `ruff format` lays them. Checked against ruff
itself on many generated values, and for the values surviving the round trip."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.control.pysource import Call, Expression, Keyword, Lit, Raw, Seq, literal, render
from tests.support import ROOT

ALPHABET = "ab \"'\\\n\t\x00\x7f\xe9"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (b"", 'b""'),
        (b'{"a": 1}', "b'{\"a\": 1}'"),
        ("it's", '"it\'s"'),
        ("a\"b'c", '"a\\"b\'c"'),
        ('a"b"c\'', "'a\"b\"c\\''"),
        (b"\x00\xff\n\r\t\\", 'b"\\x00\\xff\\n\\r\\t\\\\"'),
        ("\xe9\u0101\U0001f600", '"\\xe9\\u0101\\U0001f600"'),
    ],
)
def test_literal(value: str | bytes, text: str) -> None:
    assert literal(value) == text
    assert ast.literal_eval(text) == value


def test_render_fits_or_splits() -> None:
    short = Call("f", [Lit("a"), Keyword("b", Raw("None"))])
    assert render(short, 0, "x = ") == ['x = f("a", b=None)']
    assert render(Call("f", [Lit("a")], explode=True), 4) == ["    f(", '        "a",', "    )"]
    assert render(Seq("[", "]", []), 0, "y = ") == ["y = []"]
    assert render(Lit("z" * 120), 4, "v=", ",") == [
        "    v=(",
        '        "' + "z" * 90 + '"',
        '        "' + "z" * 30 + '"',
        "    ),",
    ]


def random_value(chance: random.Random) -> str | bytes:
    size = chance.choice([0, 1, 5, 40, 80, 85, 86, 87, 88, 89, 90, 95, 96, 97, 120, 200, 400])
    text = "".join(chance.choice(ALPHABET) for _ in range(size))
    if chance.random() < 0.5:
        return text.encode("latin-1")
    return text


def random_expression(chance: random.Random, depth: int = 0) -> Expression:
    pick = chance.random()
    if depth >= 3 or pick < 0.5:
        return Lit(random_value(chance))
    items = [random_expression(chance, depth + 1) for _ in range(chance.randint(0, 3))]
    if pick < 0.7:
        return Seq("[", "]", items, explode=chance.random() < 0.3)
    if pick < 0.8 and len(items) == 2:
        return Seq("(", ")", items)
    if pick < 0.9:
        return Call("call", items, explode=chance.random() < 0.3)
    return Call("call", [Keyword(f"k{n}", item) for n, item in enumerate(items)])


def test_ruff_format_agrees(tmp_path: Path) -> None:
    """Many random expressions, laid out at several indents: ruff changes nothing, values hold."""
    chance = random.Random(20261128)
    expressions = [random_expression(chance) for _ in range(300)]
    lines = ["def f() -> None:"]
    for n, expression in enumerate(expressions):
        lines += render(expression, 4 * (1 + n % 3), f"v{n} = ") if n % 3 == 0 else []
        if n % 3:
            lines += ["    if True:" if n % 3 == 1 else "    if True:\n        if True:"]
            lines += render(expression, 4 * (1 + n % 3), f"v{n} = ")
    module = tmp_path / "laid_out.py"
    module.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ruff"), "format", "--check", "--diff", "--no-cache",
         "--config", str(ROOT / "pyproject.toml"), str(module)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, ""), done.stdout[:3000]
    assigned = {
        node.targets[0].id: node.value
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    for n, expression in enumerate(expressions):
        if isinstance(expression, Lit):
            assert ast.literal_eval(assigned[f"v{n}"]) == expression.value
