"""Validation of writes. DRF's default messages are the contract's messages."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from rest_framework import serializers

CURRENCIES = ("CAD", "USD", "EUR", "GBP", "AUD")
BOOKING_STATUSES = ("pending", "confirmed", "cancelled")
# The nationalities the demo knows, by the ISO code the reservations system stores; a
# customer's nationality is one of them, shown as the G API's Nationality stub.
NATIONALITIES: Mapping[str, str] = MappingProxyType(
    {
        "AU": "Australian",
        "CA": "Canadian",
        "DE": "German",
        "ES": "Spanish",
        "FR": "French",
        "GB": "British",
        "IE": "Irish",
        "IN": "Indian",
        "IT": "Italian",
        "JP": "Japanese",
        "NL": "Dutch",
        "NZ": "New Zealander",
        "SE": "Swedish",
        "US": "American",
    }
)


class ReferenceField(serializers.ChoiceField):
    """The id of one of `choices`, sent bare (`"CA"`) or as the object the API shows
    (`{"id": "CA", "href": ..., "name": ...}`); the id is what is stored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = data.get("id")
        return super().to_internal_value(data)


class WriteSerializer(serializers.Serializer[Mapping[str, Any]]):
    """Validates a write body; `wire_data` is what the source system stores.

    Never given an instance (writes go to the source systems); one would be a mapping."""

    def wire_data(self) -> dict[str, Any]:
        """Validated fields in their stored form (decimals as "12.30", dates as "YYYY-MM-DD")."""
        validated: Mapping[str, Any] = self.validated_data
        fields = self.fields
        return {name: fields[name].to_representation(value) for name, value in validated.items()}


class BookingSerializer(WriteSerializer):
    customer_id = serializers.IntegerField(min_value=1)
    departure_id = serializers.IntegerField(min_value=1)
    travellers = serializers.IntegerField(min_value=1, max_value=20)
    currency = serializers.ChoiceField(choices=CURRENCIES)
    total_amount = serializers.DecimalField(
        max_digits=None, decimal_places=2, min_value=Decimal("0"), coerce_to_string=True
    )
    status = serializers.ChoiceField(choices=BOOKING_STATUSES, required=False)
    contact_email = serializers.EmailField(required=False)


class CustomerSerializer(WriteSerializer):
    first_name = serializers.CharField(max_length=100)
    last_name = serializers.CharField(max_length=100)
    email = serializers.EmailField()
    date_of_birth = serializers.DateField(required=False)
    nationality = ReferenceField(choices=tuple(NATIONALITIES), required=False)
