from __future__ import annotations

from typing import Any

import pytest

from drf_app.serializers import NATIONALITIES, BookingSerializer, CustomerSerializer
from legacy_flask import resources
from source_systems import demo

BOOKING = {
    "customer_id": 1,
    "departure_id": 2,
    "travellers": 3,
    "currency": "CAD",
    "total_amount": "12.5",
}
CUSTOMER = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}


def first_errors(serializer: Any) -> dict[str, str]:
    assert not serializer.is_valid()
    return {field: str(messages[0]) for field, messages in serializer.errors.items()}


def test_a_valid_booking_is_stored_with_two_decimals() -> None:
    serializer = BookingSerializer(data={**BOOKING, "unknown": 1, "status": "confirmed"})
    assert serializer.is_valid()
    assert serializer.wire_data() == {**BOOKING, "total_amount": "12.50", "status": "confirmed"}


def test_missing_fields_are_reported_in_field_order() -> None:
    errors = first_errors(BookingSerializer(data={}))
    assert list(errors) == ["customer_id", "departure_id", "travellers", "currency", "total_amount"]
    assert set(errors.values()) == {"This field is required."}


def test_partial_writes_check_only_given_fields() -> None:
    serializer = BookingSerializer(data={"travellers": 4}, partial=True)
    assert serializer.is_valid()
    assert serializer.wire_data() == {"travellers": 4}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("customer_id", "x", "A valid integer is required."),
        ("customer_id", 0, "Ensure this value is greater than or equal to 1."),
        ("travellers", 21, "Ensure this value is less than or equal to 20."),
        ("currency", "JPY", '"JPY" is not a valid choice.'),
        ("total_amount", "abc", "A valid number is required."),
        ("total_amount", "1.234", "Ensure that there are no more than 2 decimal places."),
        ("total_amount", -1, "Ensure this value is greater than or equal to 0."),
        ("status", None, "This field may not be null."),
        ("contact_email", "nope", "Enter a valid email address."),
    ],
)
def test_booking_messages(field: str, value: Any, message: str) -> None:
    assert first_errors(BookingSerializer(data={**BOOKING, field: value})) == {field: message}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("first_name", "", "This field may not be blank."),
        ("first_name", ["x"], "Not a valid string."),
        ("last_name", "x" * 101, "Ensure this field has no more than 100 characters."),
        ("email", "a@", "Enter a valid email address."),
        (
            "date_of_birth",
            "01/02/2000",
            "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
        ),
        ("nationality", "CAN", '"CAN" is not a valid choice.'),
        ("nationality", ["CA"], "\"['CA']\" is not a valid choice."),
        ("nationality", {"name": "Canadian"}, '"None" is not a valid choice.'),
    ],
)
def test_customer_messages(field: str, value: Any, message: str) -> None:
    assert first_errors(CustomerSerializer(data={**CUSTOMER, field: value})) == {field: message}


def test_the_nationalities_are_legacys_and_the_seeds() -> None:
    """The table is kept in each gateway: the same codes and names, the codes the seed uses."""
    assert dict(NATIONALITIES) == resources.NATIONALITIES
    assert set(NATIONALITIES) == set(demo.NATIONALITIES)


def test_a_nationality_is_stored_by_its_id_whether_sent_bare_or_as_the_read_object() -> None:
    for sent in ("IE", {"id": "IE", "href": "http://h/nationalities/IE", "name": "Irish"}):
        serializer = CustomerSerializer(data={**CUSTOMER, "nationality": sent})
        assert serializer.is_valid()
        assert serializer.wire_data()["nationality"] == "IE"


def test_a_valid_customer_keeps_its_date_as_text() -> None:
    serializer = CustomerSerializer(data={**CUSTOMER, "date_of_birth": "1815-12-10"})
    assert serializer.is_valid()
    assert serializer.wire_data()["date_of_birth"] == "1815-12-10"
