"""Validation messages: Django REST Framework's defaults, word for word."""

import pytest

from legacy_flask.resources import RESOURCES
from legacy_flask.validation import parse_paging, validate

BOOKINGS = RESOURCES["bookings"]["writable"]
CUSTOMERS = RESOURCES["customers"]["writable"]
GOOD_BOOKING = {
    "customer_id": 1,
    "departure_id": 2,
    "travellers": 3,
    "currency": "CAD",
    "total_amount": "123.4",
}
DATE_MESSAGE = "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
GOOD_CUSTOMER = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}


def booking_error(field, value):
    _, errors = validate(BOOKINGS, {**GOOD_BOOKING, field: value}, partial=False)
    return errors


def customer_error(field, value):
    _, errors = validate(CUSTOMERS, {**GOOD_CUSTOMER, field: value}, partial=False)
    return errors


def test_valid_booking_is_cleaned():
    body = {**GOOD_BOOKING, "customer_id": "7", "travellers": 2.0, "total_amount": 5, "x": 1}
    data, errors = validate(BOOKINGS, body, partial=False)
    assert errors == []
    assert data == {
        "customer_id": 7,
        "departure_id": 2,
        "travellers": 2,
        "currency": "CAD",
        "total_amount": "5.00",
    }


def test_missing_fields_in_declared_order():
    _, errors = validate(BOOKINGS, {"status": "nope"}, partial=False)
    assert errors == [
        {"field": "customer_id", "message": "This field is required."},
        {"field": "departure_id", "message": "This field is required."},
        {"field": "travellers", "message": "This field is required."},
        {"field": "currency", "message": "This field is required."},
        {"field": "total_amount", "message": "This field is required."},
        {"field": "status", "message": '"nope" is not a valid choice.'},
    ]


def test_partial_checks_only_given_fields():
    data, errors = validate(BOOKINGS, {"travellers": "4"}, partial=True)
    assert (data, errors) == ({"travellers": 4}, [])
    _, errors = validate(BOOKINGS, {"travellers": 0}, partial=True)
    assert errors == [
        {"field": "travellers", "message": "Ensure this value is greater than or equal to 1."}
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("customer_id", "abc", "A valid integer is required."),
        ("customer_id", 1.5, "A valid integer is required."),
        ("customer_id", True, "A valid integer is required."),
        ("customer_id", [1], "A valid integer is required."),
        ("customer_id", 0, "Ensure this value is greater than or equal to 1."),
        ("customer_id", None, "This field may not be null."),
        ("travellers", 21, "Ensure this value is less than or equal to 20."),
        ("travellers", "", "A valid integer is required."),
        ("currency", "cad", '"cad" is not a valid choice.'),
        ("currency", "", '"" is not a valid choice.'),
        ("currency", 5, '"5" is not a valid choice.'),
        ("total_amount", "abc", "A valid number is required."),
        ("total_amount", "", "A valid number is required."),
        ("total_amount", "NaN", "A valid number is required."),
        ("total_amount", "Infinity", "A valid number is required."),
        ("total_amount", True, "A valid number is required."),
        ("total_amount", "1.234", "Ensure that there are no more than 2 decimal places."),
        ("total_amount", "1.230", "Ensure that there are no more than 2 decimal places."),
        ("total_amount", 0.001, "Ensure that there are no more than 2 decimal places."),
        ("total_amount", "-0.01", "Ensure this value is greater than or equal to 0."),
        ("status", "done", '"done" is not a valid choice.'),
        ("status", None, "This field may not be null."),
        ("contact_email", "nope", "Enter a valid email address."),
        ("contact_email", "a@b", "Enter a valid email address."),
        ("contact_email", "", "This field may not be blank."),
        ("contact_email", "   ", "This field may not be blank."),
        ("contact_email", ["a@b.com"], "Enter a valid email address."),
    ],
)
def test_booking_messages(field, value, message):
    assert booking_error(field, value) == [{"field": field, "message": message}]


@pytest.mark.parametrize(
    ("value", "stored"),
    [("123.4", "123.40"), (12, "12.00"), (" 7.5 ", "7.50"), (0, "0.00"), ("1e2", "100.00")],
)
def test_total_amount_stored_with_two_decimals(value, stored):
    data, errors = validate(BOOKINGS, {**GOOD_BOOKING, "total_amount": value}, partial=False)
    assert errors == []
    assert data["total_amount"] == stored


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("first_name", "", "This field may not be blank."),
        ("first_name", "  ", "This field may not be blank."),
        ("first_name", "x" * 101, "Ensure this field has no more than 100 characters."),
        ("first_name", {"a": 1}, "Not a valid string."),
        ("first_name", False, "Not a valid string."),
        ("first_name", "a\x00b", "Null characters are not allowed."),
        ("last_name", None, "This field may not be null."),
        ("email", "ada@", "Enter a valid email address."),
        ("email", "ada@example", "Enter a valid email address."),
        (
            "date_of_birth",
            "1990-13-01",
            DATE_MESSAGE,
        ),
        ("date_of_birth", "01/02/1990", DATE_MESSAGE),
        ("date_of_birth", "", DATE_MESSAGE),
        ("date_of_birth", 19900101, DATE_MESSAGE),
        ("nationality", "CAN", '"CAN" is not a valid choice.'),
        ("nationality", "gb", '"gb" is not a valid choice.'),
        ("nationality", "a\x00", '"a\x00" is not a valid choice.'),
        ("nationality", ["CA"], "\"['CA']\" is not a valid choice."),
        ("nationality", {"name": "Canadian"}, '"None" is not a valid choice.'),
        ("nationality", {"id": "XX"}, '"XX" is not a valid choice.'),
    ],
)
def test_customer_messages(field, value, message):
    assert customer_error(field, value) == [{"field": field, "message": message}]


def test_valid_customer_is_cleaned():
    body = {
        **GOOD_CUSTOMER,
        "first_name": " Ada ",
        "email": "ada@localhost",
        "date_of_birth": "1815-12-10",
        "nationality": {"id": "GB", "href": "http://h/nationalities/GB", "name": "British"},
    }
    data, errors = validate(CUSTOMERS, body, partial=False)
    assert errors == []
    assert data == {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@localhost",
        "date_of_birth": "1815-12-10",
        "nationality": "GB",
    }


@pytest.mark.parametrize(
    "email", ["a.b+c@example.co.uk", "x@[127.0.0.1]", '"quoted"@example.com', "a@xn--bcher-kva.ch"]
)
def test_valid_emails(email):
    assert customer_error("email", email) == []


@pytest.mark.parametrize(
    ("page", "per_page", "expected"),
    [
        (None, None, (1, 20, [])),
        ("3", "50", (3, 50, [])),
        ("1", "101", (1, 100, [])),
        ("0", None, (1, 20, [{"field": "page", "message": "A valid integer is required."}])),
        ("x", None, (1, 20, [{"field": "page", "message": "A valid integer is required."}])),
        (
            "",
            "-1",
            (
                1,
                20,
                [
                    {"field": "page", "message": "A valid integer is required."},
                    {"field": "max_per_page", "message": "A valid integer is required."},
                ],
            ),
        ),
    ],
)
def test_parse_paging(page, per_page, expected):
    assert parse_paging(page, per_page) == expected
