"""proxy.routing.jsonpath: the ignore-path subset, parsed and matched."""

from __future__ import annotations

import pytest

from proxy.routing.jsonpath import (
    WILDCARD,
    Ignore,
    JSONPathError,
    Step,
    format_path,
    is_valid,
    parse,
)


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("$", ()),
        ("$.meta", ("meta",)),
        ("$.meta.generated_at", ("meta", "generated_at")),
        ("$.results[*].href", ("results", WILDCARD, "href")),
        ("$.results[3].contact_email", ("results", 3, "contact_email")),
        ("$[0][*]", (0, WILDCARD)),
        ("$._x-y.Z9", ("_x-y", "Z9")),
        ("$.@version", ("@version",)),  # an XML attribute
        ("$.tags.list-item[1].@id", ("tags", "list-item", 1, "@id")),
    ],
)
def test_parse(text: str, steps: tuple[Step, ...]) -> None:
    assert parse(text) == steps
    assert is_valid(text)


@pytest.mark.parametrize(
    "text",
    [
        *(
            "",
            "meta",
            "$.",
            "$..a",
            "$.a.",
            "$.9a",
            "$.a b",
            "$[x]",
            "$[-1]",
            "$['a']",
            "$[*",
            "$a",
        ),
        *("$.@", "$@a", "$.@@a", "$.a@b", "$.@9", "$[@a]"),
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(JSONPathError):
        parse(text)
    assert not is_valid(text)


def test_format_path() -> None:
    assert format_path(()) == "$"
    assert format_path(("results", 3, "email")) == "$.results[3].email"


def walk(ignore: Ignore, steps: tuple[Step, ...]) -> bool:
    """Whether the node at `steps` is ignored, walking down as the differ does."""
    for step in steps:
        if ignore.ignored:
            return True
        ignore = ignore.child(step)
    return ignore.ignored


@pytest.mark.parametrize(
    ("paths", "node", "ignored"),
    [
        (["$.meta.generated_at"], ("meta", "generated_at"), True),
        (["$.meta.generated_at"], ("meta",), False),
        (["$.meta.generated_at"], ("meta", "other"), False),
        (["$.meta"], ("meta", "generated_at", 0), True),  # a path covers what is below it
        (["$"], ("anything",), True),
        (["$.results[*].href"], ("results", 0, "href"), True),
        (["$.results[*].href"], ("results", 41, "href"), True),
        (["$.results[*].href"], ("results", "0", "href"), False),  # [*] is for list items
        (["$.results[*].href"], ("results", 0, "id"), False),
        (["$.results[2].href"], ("results", 2, "href"), True),
        (["$.results[2].href"], ("results", 1, "href"), False),
        (["$.a.b", "$.c[*]"], ("c", 5), True),
        (["$.a.b", "$.c[*]"], ("a", "c"), False),
        ([], ("a",), False),
    ],
)
def test_ignore(paths: list[str], node: tuple[Step, ...], ignored: bool) -> None:
    assert walk(Ignore.compile(paths), node) is ignored


def walk_xml(ignore: Ignore, steps: tuple[tuple[str, int] | str, ...]) -> bool:
    """Whether the XML node at `steps` is ignored: (name, index) for an element, `@name` for an
    attribute."""
    for step in steps:
        if ignore.ignored:
            return True
        ignore = ignore.child(step) if isinstance(step, str) else ignore.element(*step)
    return ignore.ignored


@pytest.mark.parametrize(
    ("paths", "node", "ignored"),
    [
        (["$.tags.list-item[1]"], (("tags", 0), ("list-item", 1)), True),
        (["$.tags.list-item[1]"], (("tags", 0), ("list-item", 0)), False),
        (["$.tags.list-item[*]"], (("tags", 0), ("list-item", 7)), True),
        (["$.tags.list-item[*]"], (("tags", 0), ("list-item", 0)), True),  # a list of one too
        (["$.tags.list-item"], (("tags", 0), ("list-item", 3)), True),  # every list-item
        (["$.tags[0]"], (("tags", 0), ("list-item", 3)), True),
        (["$.tags[1]"], (("tags", 0),), False),
        (["$.r.list-item[*].href"], (("r", 0), ("list-item", 2), ("href", 0)), True),
        (["$.r.list-item[*].href"], (("r", 0), ("list-item", 2), ("id", 0)), False),
        (["$.r.list-item[*].href"], (("r", 0), ("list-item", 2), "@href"), False),
        (["$.@version"], ("@version",), True),
        (["$.@version"], (("version", 0),), False),  # an attribute is not an element
        (["$.a.@id"], (("a", 1), "@id"), True),
        (["$.a[0].@id"], (("a", 1), "@id"), False),
        (["$.version"], ("@version",), False),
    ],
)
def test_ignore_xml(
    paths: list[str], node: tuple[tuple[str, int] | str, ...], ignored: bool
) -> None:
    assert walk_xml(Ignore.compile(paths), node) is ignored
