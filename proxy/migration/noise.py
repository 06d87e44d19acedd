"""Learned noise: the body paths where two answers of the primary backend differ on their own.

A sample of shadowed GETs is also asked of the primary a second time, and the two primary answers
are compared (`proxy.migration.diff.compare`, without ignore paths). What differs there is no
migration bug but noise: a timestamp, a generated token, a set listed in random order. A
`NoiseBook` counts, per resource, in how many such comparisons each path differed; once a path
has differed at least `after` times (a route's `shadow.noise_after`), `learned` names it, and
passed to `compare(..., noise=...)` it turns the `value` differences under it into `noise` (never
a `status` or `schema` one).

Paths are learned generalised, list indices as `[*]` (`$.results[3].generated_at` is learned as
`$.results[*].generated_at`: a list in random order differs at every index), and written in the
`shadow.ignore` subset so that `ignore_rules` can offer them for routes.yaml. Only body paths are
learned: not the status, the headers, a body compared by hash (`body`) nor the cap's `...`; a path
through a member name outside the subset's grammar (`$["first name"]`, `$["1st"]`) cannot be
written as a rule and is skipped. A comparison whose statuses differ teaches nothing (an error
page is another document, not noise).

>>> from proxy.migration.diff import Difference
>>> book = NoiseBook()
>>> for _ in range(3):
...     book.observe("tours", [Difference("$.items[4].token", "changed", "a", "b")])
>>> book.counts("tours")
{'$.items[*].token': 3}
>>> ignore_rules(book.counts("tours"), after=3)
'ignore: ["$.items[*].token"]'

Memory is bounded: a resource counts at most `max_paths` (MAX_PATHS) distinct paths; once it has
that many, a new path is not counted (the ones already counted go on counting). Pure: no I/O.
With `--workers N`, each worker keeps its own book, shares its `snapshot()` and gives its book the
others' (`share`); `merge_noise` sums snapshots.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from proxy.migration.diff import NOISE, Difference
from proxy.routing.jsonpath import Ignore, JSONPathError, Step, parse

MAX_PATHS = 200
NOISE_AFTER = 3
Counts = dict[str, dict[str, int]]  # resource -> path -> times it differed on the primary alone


def generalise(where: str) -> str | None:
    """A difference's path as it is learned, or None when it is not learned.

    >>> generalise("$.results[3].generated_at"), generalise("status"), generalise('$["a b"]')
    ('$.results[*].generated_at', None, None)
    """
    if not where.startswith("$"):
        return None
    try:
        steps = parse(where)
    except JSONPathError:
        return None
    return "$" + "".join("[*]" if isinstance(step, int) else f".{step}" for step in steps)


@dataclass
class NoiseBook:
    """Per resource, how many primary-vs-primary comparisons each generalised path differed in."""

    max_paths: int = MAX_PATHS
    _own: Counts = field(default_factory=dict, init=False)
    _others: Counts = field(default_factory=dict, init=False)
    _learned: dict[str, tuple[int, Ignore]] = field(default_factory=dict, init=False)

    def observe(self, resource: str, differences: Iterable[Difference]) -> None:
        """Count one comparison of two primary answers: each learnable path once."""
        paths: set[str] = set()
        for difference in differences:
            if difference.where == "status":
                return
            path = generalise(difference.where)
            if path is not None and difference.class_ != NOISE:
                paths.add(path)
        counts = self._own.setdefault(resource, {})
        for path in sorted(paths):
            if path not in counts and len(counts) >= self.max_paths:
                continue
            counts[path] = counts.get(path, 0) + 1
            self._crossed(resource, path)

    def _crossed(self, resource: str, path: str) -> None:
        """Forget the resource's compiled paths when `path` just reached their threshold."""
        learned = self._learned.get(resource)
        if learned is not None and self._total(resource, path) == learned[0]:
            del self._learned[resource]

    def _total(self, resource: str, path: str) -> int:
        own, others = self._own.get(resource, {}), self._others.get(resource, {})
        return own.get(path, 0) + others.get(path, 0)

    def learned(self, resource: str, after: int = NOISE_AFTER) -> Ignore:
        """The paths seen `after` times or more, compiled (again only when one crosses `after`)."""
        cached = self._learned.get(resource)
        if cached is not None and cached[0] == after:
            return cached[1]
        ignore = Ignore.compile(noise_paths(self.counts(resource), after))
        self._learned[resource] = (after, ignore)
        return ignore

    def counts(self, resource: str) -> dict[str, int]:
        """Path -> times, most first: this book's and the other workers' (`share`)."""
        own, others = self._own.get(resource, {}), self._others.get(resource, {})
        return merge_noise([{resource: own}, {resource: others}], None).get(resource, {})

    def snapshot(self) -> Counts:
        """This book's own counts (not the shared ones), as JSON: what a worker shares."""
        return {resource: dict(_ranked(counts)) for resource, counts in self._own.items() if counts}

    def share(self, others: Iterable[Mapping[str, Mapping[str, int]]]) -> None:
        """Take the other workers' snapshots (replacing the ones taken before)."""
        self._others = merge_noise(others, self.max_paths)
        self._learned.clear()


def merge_noise(
    snapshots: Iterable[Mapping[str, Mapping[str, int]]], limit: int | None = MAX_PATHS
) -> Counts:
    """Several snapshots summed: per resource path -> times, most first, the `limit` most seen.

    >>> merge_noise([{"a": {"$.x": 1}}, {"a": {"$.x": 2, "$.y": 1}, "b": {"$.z": 1}}])
    {'a': {'$.x': 3, '$.y': 1}, 'b': {'$.z': 1}}
    """
    summed: Counts = {}
    for snapshot in snapshots:
        for resource, counts in snapshot.items():
            total = summed.setdefault(resource, {})
            for path, times in counts.items():
                total[path] = total.get(path, 0) + int(times)
    return {
        resource: dict(_ranked(counts)[:limit]) for resource, counts in summed.items() if counts
    }


def _ranked(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def noise_paths(counts: Mapping[str, int], after: int = NOISE_AFTER) -> list[str]:
    """The paths counted `after` times or more, sorted, less the ones a shorter one covers.

    >>> noise_paths({"$.a[*]": 3, "$.a[*].b": 5, "$.c": 2, "$.d": 4}, after=3)
    ['$.a[*]', '$.d']
    """
    steps: dict[tuple[Step, ...], str] = {}
    for path, times in counts.items():
        try:
            if times >= after:
                steps[parse(path)] = path
        except JSONPathError:
            continue
    covered = {key for key in steps if any(key[:length] in steps for length in range(len(key)))}
    return sorted(path for key, path in steps.items() if key not in covered)


def ignore_rules(
    counts: Mapping[str, int], after: int = NOISE_AFTER, keep: Sequence[str] = ()
) -> str:
    """routes.yaml's `ignore:` entry (YAML flow) for a resource's learned paths, after `keep`
    (the route's declared paths, so the line can replace its `ignore:`); "" when there is no
    path (routes.yaml refuses an empty list).

    >>> ignore_rules({"$.meta.generated_at": 4, "$.n": 1}, after=3, keep=["$.token"])
    'ignore: ["$.token", "$.meta.generated_at"]'
    """
    paths = [*keep, *(path for path in noise_paths(counts, after) if path not in keep)]
    return f"ignore: [{', '.join(json.dumps(path) for path in paths)}]" if paths else ""
