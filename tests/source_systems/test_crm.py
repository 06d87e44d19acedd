"""The CRM seed: every 10th booking left out, customers all present."""

from __future__ import annotations

from source_systems import crm, reservations


def test_seed_is_deterministic() -> None:
    assert crm.seed() == crm.seed()


def test_every_tenth_booking_has_no_crm_record() -> None:
    ids = [item["id"] for item in crm.seed()["bookings"]]
    assert ids == [number for number in range(1, 201) if number % 10]
    assert len(ids) == 180


def test_booking_records_have_the_spec_fields() -> None:
    for booking in crm.seed()["bookings"]:
        assert set(booking) == {"id", "agent_notes", "sales_channel", "contact_email"}
        assert booking["sales_channel"] in crm.CHANNELS
        assert "@" in booking["contact_email"]


def test_customers_cover_every_reservations_customer() -> None:
    customers = crm.seed()["customers"]
    assert [item["id"] for item in customers] == list(range(1, 101))
    for customer in customers:
        assert set(customer) == {
            "id",
            "loyalty_tier",
            "contact_preferences",
            "agent_notes",
            "email",
        }
        assert customer["loyalty_tier"] in crm.TIERS
        assert set(customer["contact_preferences"]) == {"email", "sms", "phone"}
        assert all(type(flag) is bool for flag in customer["contact_preferences"].values())


def test_some_emails_differ_from_reservations() -> None:
    theirs = {item["id"]: item["email"] for item in reservations.seed()["customers"]}
    differing = [item for item in crm.seed()["customers"] if item["email"] != theirs[item["id"]]]
    assert 0 < len(differing) < 100
