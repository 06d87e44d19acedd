"""proxy.migration.noise: paths learned from two answers of the primary, generalised, bounded,
merged between workers, and offered as routes.yaml ignore rules."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from proxy.migration.diff import Captured, Difference, classify, compare
from proxy.migration.noise import (
    MAX_PATHS,
    NoiseBook,
    generalise,
    ignore_rules,
    merge_noise,
    noise_paths,
)
from proxy.routing import jsonpath
from proxy.routing.parser import parse_table

JSON = b"application/json"


def doc(value: Any, status: int = 200) -> Captured:
    return Captured.of(status, JSON, json.dumps(value).encode())


def answer(rng: random.Random) -> Captured:
    """An answer of the primary: a random token, a set listed in random order, a stable rest."""
    tags = ["alps", "lakes", "trains", "food"]
    rng.shuffle(tags)
    results = [{"id": n, "name": f"tour {n}"} for n in range(1, 4)]
    rng.shuffle(results)
    return doc(
        {
            "meta": {"generated_at": f"2026-11-28T10:00:{rng.randrange(60):02}Z", "total": 3},
            "token": rng.getrandbits(64),
            "tags": tags,
            "results": results,
        }
    )


def twice(book: NoiseBook, times: int, seed: int = 1) -> None:
    """`times` comparisons of two answers of the primary (the seed makes them differ)."""
    rng = random.Random(seed)
    done = 0
    while done < times:
        differences = compare(answer(rng), answer(rng))
        if {d.where for d in differences} >= {"$.meta.generated_at", "$.token"}:
            book.observe("tours", differences)
            done += 1


def test_learning_from_two_answers_of_the_primary() -> None:
    book = NoiseBook()
    twice(book, 5)
    counts = book.counts("tours")
    assert counts["$.meta.generated_at"] == counts["$.token"] == 5
    assert {"$.tags[*]", "$.results[*].id", "$.results[*].name"} <= set(counts)
    assert "$.meta.total" not in counts
    assert list(counts.values()) == sorted(counts.values(), reverse=True)  # most first

    # What the primary does on its own is noise against the shadow now; anything else is not.
    learned = book.learned("tours", 3)
    live = {"meta": {"generated_at": "a", "total": 3}, "token": 1, "tags": ["x", "y"]}
    shadow = {"meta": {"generated_at": "b", "total": 3}, "token": 2, "tags": ["y", "x"]}
    found = compare(doc(live), doc(shadow), noise=learned)
    assert {d.class_ for d in found} == {"noise"}
    assert classify(found) == "noise"
    found = compare(
        doc(live), doc({**shadow, "meta": {"generated_at": "b", "total": 4}}), noise=learned
    )
    assert [(d.where, d.class_) for d in found if d.class_ != "noise"] == [
        ("$.meta.total", "value")
    ]
    found = compare(doc(live), doc({**shadow, "token": "2"}), noise=learned)  # a type change
    assert [(d.where, d.class_) for d in found if d.class_ != "noise"] == [("$.token", "schema")]


def test_threshold() -> None:
    book = NoiseBook()
    diff = [Difference("$.token", "changed", 1, 2)]
    book.observe("tours", diff)
    book.observe("tours", diff)
    assert book.learned("tours", 3).suffixes == ()
    assert book.learned("tours", 2).suffixes == (("token",),)
    book.observe("tours", diff)
    assert book.learned("tours", 3).suffixes == (("token",),)
    assert book.learned("other", 1).suffixes == ()  # per resource
    assert noise_paths(book.counts("tours"), 4) == []


def test_learned_is_compiled_again_only_when_a_count_crosses_the_threshold() -> None:
    book = NoiseBook()
    token, other = Difference("$.token", "changed", 1, 2), Difference("$.n", "changed", 1, 2)
    first = book.learned("tours", 2)
    book.observe("tours", [token])
    assert book.learned("tours", 2) is first  # 1 < 2: nothing crossed
    book.observe("tours", [token])
    second = book.learned("tours", 2)
    assert second is not first and second.suffixes == (("token",),)
    book.observe("tours", [token, other])
    assert book.learned("tours", 2) is second  # 3 is past 2, 1 is below it
    book.observe("tours", [other])
    assert book.learned("tours", 2).suffixes == (("n",), ("token",))


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("$.results[3].generated_at", "$.results[*].generated_at"),
        ("$[0][12].a-b_c", "$[*][*].a-b_c"),
        ("$.meta.generated_at", "$.meta.generated_at"),
        ("$", "$"),
        ('$["first name"]', None),  # outside the ignore grammar: cannot be a rule
        ('$.results[0]["1st"].x', None),
        ("status", None),
        ("content-type", None),
        ("location", None),
        ("allow", None),
        ("body", None),
        ("...", None),
    ],
)
def test_generalise(where: str, expected: str | None) -> None:
    assert generalise(where) == expected
    assert expected is None or jsonpath.is_valid(expected)


def test_each_path_is_counted_once_per_observation() -> None:
    book = NoiseBook()
    found = compare(
        doc({"results": [{"x": 1}, {"x": 2}, {"x": 3}]}),
        doc({"results": [{"x": 3}, {"x": 2}, {"x": 1}]}),
    )
    assert [d.where for d in found] == ["$.results[0].x", "$.results[2].x"]
    book.observe("tours", found)
    assert book.counts("tours") == {"$.results[*].x": 1}


def test_what_is_not_learned() -> None:
    book = NoiseBook()
    unwritable = compare(
        doc({"first name": 1, "1st": 1, "ok": 1}), doc({"first name": 2, "1st": 2, "ok": 2})
    )
    assert [d.where for d in unwritable] == ['$["first name"]', '$["1st"]', "$.ok"]
    book.observe("tours", unwritable)
    hashed = compare(Captured.of(200, b"text/html", b"a"), Captured.of(200, b"text/plain", b"b"))
    assert [d.where for d in hashed] == ["content-type", "body"]
    book.observe("tours", hashed)
    capped = compare(doc(list(range(60))), doc([n + 1 for n in range(60)]))
    assert capped[-1].where == "..."
    book.observe("tours", capped)
    assert book.counts("tours") == {"$.ok": 1, "$[*]": 1}
    # Two answers of other statuses are other documents: nothing is learned from them.
    book.observe("tours", compare(doc({"ok": 1}, 200), doc({"error": "x", "ok": 3}, 503)))
    assert book.counts("tours") == {"$.ok": 1, "$[*]": 1}
    # Nor from what is already noise.
    book.observe("tours", [Difference("$.n", "changed", 1, 2, "noise")])
    assert "$.n" not in book.counts("tours")


def test_the_paths_per_resource_are_bounded() -> None:
    book = NoiseBook(max_paths=3)
    book.observe("tours", [Difference(f"$.f{n}", "changed", 1, 2) for n in range(5)])
    assert book.counts("tours") == {"$.f0": 1, "$.f1": 1, "$.f2": 1}
    book.observe("tours", [Difference(f"$.f{n}", "changed", 1, 2) for n in (4, 2)])
    assert book.counts("tours") == {"$.f2": 2, "$.f0": 1, "$.f1": 1}  # new paths not counted
    assert MAX_PATHS == NoiseBook().max_paths == 200


def test_noise_paths_leave_out_what_a_shorter_path_covers() -> None:
    counts = {"$.results[*]": 3, "$.results[*].id": 9, "$.meta.at": 3, "$.a": 2, "bad": 5}
    assert noise_paths(counts, 3) == ["$.meta.at", "$.results[*]"]
    assert noise_paths({"$": 3, "$.a": 3}, 3) == ["$"]


ROUTES = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:5000"}
  drf: {url: "http://127.0.0.1:8000"}
default: legacy
resources:
  tours:
    backend: legacy
    shadow: {backend: drf, %s}
  bookings:
    backend: legacy
    shadow:
      backend: drf
      %s
"""


def test_the_rules_parse_as_routes_yaml() -> None:
    book = NoiseBook()
    twice(book, 3)
    book.observe("tours", [Difference("$.once", "changed", 1, 2)])
    counts = book.counts("tours")
    rules = ignore_rules(counts, 3)
    learned = noise_paths(counts, 3)
    assert "$.once" not in learned and "$.token" in learned
    assert rules == "ignore: [" + ", ".join(f'"{path}"' for path in learned) + "]"
    assert all(jsonpath.is_valid(path) for path in learned)

    table = parse_table(ROUTES % (rules, rules))  # in a flow mapping, and as a block key
    assert table.routes["tours"].shadow is not None
    assert table.routes["tours"].shadow.ignore == tuple(learned)
    assert table.routes["bookings"].shadow is not None
    assert table.routes["bookings"].shadow.ignore == tuple(learned)
    assert book.learned("tours", 3).suffixes == jsonpath.Ignore.compile(learned).suffixes


def test_rules_keep_the_declared_paths_first() -> None:
    counts = {"$.token": 3, "$.meta.at": 5}
    assert ignore_rules(counts, 3, keep=["$.meta.at", "$.x"]) == (
        'ignore: ["$.meta.at", "$.x", "$.token"]'
    )
    assert ignore_rules({"$.token": 2}, 3) == ignore_rules({}, 3) == ""  # nothing to paste
    assert ignore_rules({"$.token": 2}, 3, keep=["$.x"]) == 'ignore: ["$.x"]'


def test_merge_of_snapshots() -> None:
    one, two = NoiseBook(), NoiseBook()
    one.observe("tours", [Difference("$.a", "changed", 1, 2), Difference("$.b", "changed", 1, 2)])
    one.observe("tours", [Difference("$.a", "changed", 1, 2)])
    two.observe("tours", [Difference("$.b[4]", "changed", 1, 2)])
    two.observe("tours", [Difference("$.b", "changed", 1, 2)])
    two.observe("bookings", [Difference("$.id", "changed", 1, 2)])
    snapshots = [json.loads(json.dumps(book.snapshot())) for book in (one, two)]  # as shared
    assert snapshots[0] == {"tours": {"$.a": 2, "$.b": 1}}
    merged = merge_noise(snapshots)
    assert merged == {
        "tours": {"$.a": 2, "$.b": 2, "$.b[*]": 1},
        "bookings": {"$.id": 1},
    }
    assert list(merged["tours"]) == ["$.a", "$.b", "$.b[*]"]  # most first, then by path
    assert merge_noise(snapshots, limit=1) == {"tours": {"$.a": 2}, "bookings": {"$.id": 1}}
    assert merge_noise([]) == {}


def test_a_book_counts_the_other_workers_shared_snapshots() -> None:
    mine, theirs = NoiseBook(), NoiseBook()
    mine.observe("tours", [Difference("$.a", "changed", 1, 2)])
    theirs.observe("tours", [Difference("$.a", "changed", 1, 2)])
    assert mine.learned("tours", 2).suffixes == ()
    mine.share([theirs.snapshot()])
    assert mine.counts("tours") == {"$.a": 2}
    assert mine.learned("tours", 2).suffixes == (("a",),)
    assert mine.snapshot() == {"tours": {"$.a": 1}}  # only its own: shared ones not counted twice
    mine.share([theirs.snapshot()])  # replaces, does not add
    assert mine.counts("tours") == {"$.a": 2}
