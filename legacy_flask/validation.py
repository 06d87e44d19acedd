"""Request validation with Django REST Framework's default messages, word for word.

``validate(rules, body, partial)`` returns ``(data, errors)``: the cleaned values ready for
the source system, and one ``{"field", "message"}`` per bad field in the order of `rules`.
"""

from __future__ import annotations

import datetime
import decimal
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

REQUIRED = "This field is required."
NULL = "This field may not be null."
BLANK = "This field may not be blank."
NOT_A_STRING = "Not a valid string."
NULL_CHARACTERS = "Null characters are not allowed."
INVALID_INTEGER = "A valid integer is required."
INVALID_NUMBER = "A valid number is required."
INVALID_EMAIL = "Enter a valid email address."
INVALID_DATE = "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
NO_MATCH = "This value does not match the required pattern."
TOO_LARGE = "String value too large."
MAX_STRING_LENGTH = 1000

_TRAILING_ZEROS = re.compile(r"\.0*\s*$")
_DATE = re.compile(r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})$")
_UL = "\u00a1-\uffff"
_EMAIL_USER = re.compile(
    r"(^[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*\Z"
    r'|^"([\001-\010\013\014\016-\037!#-\[\]-\177]|\\[\001-\011\013\014\016-\177])*"\Z)',
    re.IGNORECASE,
)
_EMAIL_DOMAIN = re.compile(
    r"^[a-z" + _UL + r"0-9](?:[a-z" + _UL + r"0-9-]{0,61}[a-z" + _UL + r"0-9])?"
    r"(?:\.(?!-)[a-z" + _UL + r"0-9-]{1,63}(?<!-))*"
    r"\.(?!-)(?:[a-z" + _UL + r"-]{2,63}|xn--[a-z0-9]{1,59})(?<!-)\Z",
    re.IGNORECASE,
)
_EMAIL_LITERAL = re.compile(r"\[([A-F0-9:.]+)\]\Z", re.IGNORECASE)


class Invalid(Exception):
    """One field's value is not acceptable; the message is DRF's."""


def validate(
    rules: Mapping[str, Mapping[str, Any]], body: Mapping[str, Any], partial: bool
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    data: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for field, rule in rules.items():
        if field not in body:
            if rule["required"] and not partial:
                errors.append({"field": field, "message": REQUIRED})
            continue
        try:
            data[field] = clean(rule, body[field])
        except Invalid as exc:
            errors.append({"field": field, "message": str(exc)})
    return data, errors


def clean(rule: Mapping[str, Any], value: Any) -> Any:
    if value is None:
        raise Invalid(NULL)
    return CLEANERS[rule["type"]](rule, value)


def check_bounds(rule: Mapping[str, Any], value: Any) -> None:
    if "max_value" in rule and value > rule["max_value"]:
        raise Invalid(f"Ensure this value is less than or equal to {rule['max_value']}.")
    if "min_value" in rule and value < rule["min_value"]:
        raise Invalid(f"Ensure this value is greater than or equal to {rule['min_value']}.")


def clean_integer(rule: Mapping[str, Any], value: Any) -> int:
    if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
        raise Invalid(TOO_LARGE)
    try:
        number = int(_TRAILING_ZEROS.sub("", str(value)))
    except (ValueError, TypeError):
        raise Invalid(INVALID_INTEGER) from None
    check_bounds(rule, number)
    return number


def clean_decimal(rule: Mapping[str, Any], value: Any) -> str:
    """A decimal as DRF's DecimalField reads it, returned as a string: ``"12.5"`` -> ``"12.50"``."""
    text = str(value).strip()
    if len(text) > MAX_STRING_LENGTH:
        raise Invalid(TOO_LARGE)
    try:
        number = decimal.Decimal(text)
    except decimal.DecimalException:
        raise Invalid(INVALID_NUMBER) from None
    if number.is_nan() or number.is_infinite():
        raise Invalid(INVALID_NUMBER)
    places = rule["decimal_places"]
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < 0 and -exponent > places:
        raise Invalid(f"Ensure that there are no more than {places} decimal places.")
    quantized = number.quantize(decimal.Decimal(".1") ** places)
    check_bounds(rule, quantized)
    return f"{quantized:f}"


def clean_choice(rule: Mapping[str, Any], value: Any) -> str:
    if str(value) not in rule["choices"]:
        raise Invalid(f'"{value}" is not a valid choice.')
    return str(value)


def clean_reference(rule: Mapping[str, Any], value: Any) -> str:
    """The id of one of ``rule["choices"]``, sent bare (``"CA"``) or as the object the API shows
    (``{"id": "CA", "href": ..., "name": ...}``); the id is what is stored."""
    if isinstance(value, dict):
        value = value.get("id")
    return clean_choice(rule, value)


def clean_string(rule: Mapping[str, Any], value: Any, invalid: str = NOT_A_STRING) -> str:
    if value == "" or str(value).strip() == "":
        raise Invalid(BLANK)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Invalid(invalid)
    text = str(value).strip()
    if "max_length" in rule and len(text) > rule["max_length"]:
        raise Invalid(f"Ensure this field has no more than {rule['max_length']} characters.")
    if "pattern" in rule and not re.search(rule["pattern"], text):
        raise Invalid(NO_MATCH)
    if "\x00" in text:
        raise Invalid(NULL_CHARACTERS)
    return text


def clean_email(rule: Mapping[str, Any], value: Any) -> str:
    text = clean_string(rule, value, invalid=INVALID_EMAIL)
    if not is_email(text):
        raise Invalid(INVALID_EMAIL)
    return text


def clean_regex(rule: Mapping[str, Any], value: Any) -> str:
    """A string matching ``rule["pattern"]``, checked before the null-character check, as a
    validator passed to a DRF CharField runs before the field's own."""
    return clean_string(rule, value)


def clean_date(rule: Mapping[str, Any], value: Any) -> str:
    """A date as Django's parse_date reads it, returned as ``YYYY-MM-DD``."""
    try:
        return parse_date(value).isoformat()
    except (ValueError, TypeError):
        raise Invalid(INVALID_DATE) from None


def parse_date(value: Any) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        match = _DATE.match(value)
        if match is None:
            raise
        return datetime.date(**{key: int(part) for key, part in match.groupdict().items()})


def is_email(value: str) -> bool:
    """Django's EmailValidator: user part, then a domain name, ``localhost`` or an IP literal."""
    if not value or "@" not in value or len(value) > 320:
        return False
    user, domain = value.rsplit("@", 1)
    if not _EMAIL_USER.match(user):
        return False
    return domain == "localhost" or bool(_EMAIL_DOMAIN.match(domain)) or is_ip_literal(domain)


def is_ip_literal(domain: str) -> bool:
    match = _EMAIL_LITERAL.match(domain)
    if match is None:
        return False
    try:
        ipaddress.ip_address(match[1])
    except ValueError:
        return False
    return True


CLEANERS = {
    "integer": clean_integer,
    "decimal": clean_decimal,
    "choice": clean_choice,
    "string": clean_string,
    "email": clean_email,
    "regex": clean_regex,
    "date": clean_date,
    "reference": clean_reference,
}


def positive_int(value: str | None, default: int) -> int | None:
    """A query parameter read as a positive integer: its default when absent, None if bad."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number > 0 else None


def parse_paging(
    page: str | None, per_page: str | None, cap: int = 100
) -> tuple[int, int, list[dict[str, str]]]:
    """``(page, max_per_page, errors)`` from the two query parameters.

    >>> parse_paging("2", "500")
    (2, 100, [])
    """
    errors = []
    number = positive_int(page, 1)
    size = positive_int(per_page, 20)
    if number is None:
        errors.append({"field": "page", "message": INVALID_INTEGER})
    if size is None:
        errors.append({"field": "max_per_page", "message": INVALID_INTEGER})
    return number or 1, min(size or 20, cap), errors
