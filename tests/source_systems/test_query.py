"""List query parsing and its SQL, without a database."""

from __future__ import annotations

import pytest

from source_systems.query import ListQuery, field_expression, parse_list_query, where_clause


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], ListQuery(0, 20, None, ())),
        ([("offset", "40"), ("limit", "5")], ListQuery(40, 5, None, ())),
        ([("limit", "0")], ListQuery(0, 0, None, ())),
        ([("limit", "1000")], ListQuery(0, 1000, None, ())),
        ([("ids", "3,1,2")], ListQuery(0, 20, (3, 1, 2), ())),
        ([("ids", "")], ListQuery(0, 20, (), ())),
        (
            [("tour_id", "3"), ("status", "open")],
            ListQuery(0, 20, None, (("tour_id", "3"), ("status", "open"))),
        ),
    ],
)
def test_parse_list_query_accepts(params: list[tuple[str, str]], expected: ListQuery) -> None:
    assert parse_list_query(params) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("limit", "abc")], "limit must be an integer between 0 and 1000"),
        ([("limit", "1001")], "limit must be an integer between 0 and 1000"),
        ([("limit", "-1")], "limit must be an integer between 0 and 1000"),
        ([("limit", " 5")], "limit must be an integer between 0 and 1000"),
        ([("offset", "x")], "offset must be an integer >= 0"),
        ([("offset", "-3")], "offset must be an integer >= 0"),
        ([("ids", "1,a")], "ids must be a comma separated list of integers"),
        ([("ids", "1,,2")], "ids must be a comma separated list of integers"),
        ([("tour-id", "1")], "bad filter field: 'tour-id'"),
        ([("data') OR 1=1 --", "1")], 'bad filter field: "data\') OR 1=1 --"'),
    ],
)
def test_parse_list_query_rejects(params: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_list_query(params)
    assert str(caught.value) == message


def test_where_clause_is_empty_without_ids_or_filters() -> None:
    assert where_clause(ListQuery()) == ("", [])


def test_where_clause_compares_integer_looking_values_as_int_or_string() -> None:
    sql, params = where_clause(ListQuery(filters=(("tour_id", "3"), ("status", "confirmed"))))
    assert sql == (
        " WHERE json_extract(data, '$.tour_id') IN (?, ?) AND json_extract(data, '$.status') = ?"
    )
    assert params == [3, "3", "confirmed"]


def test_where_clause_restricts_ids() -> None:
    assert where_clause(ListQuery(ids=(4, 2))) == (" WHERE id IN (?, ?)", [4, 2])
    assert where_clause(ListQuery(ids=())) == (" WHERE 0", [])


def test_field_expression_refuses_anything_but_an_identifier() -> None:
    assert field_expression("variation_id") == "json_extract(data, '$.variation_id')"
    with pytest.raises(ValueError):
        field_expression("a'b")
