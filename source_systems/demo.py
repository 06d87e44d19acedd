"""The demo world the three systems share: people and a tour catalogue.

Each system seeds its own collections, but bookings must point at real departures of real
tours and CRM notes must be about real customers, so the common parts are generated here,
deterministically, from fixed seeds. Nothing here depends on the clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

PEOPLE_SEED = 1729
TOURS_SEED = 4104

FIRST_NAMES = (
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Amelia",
    "Oliver",
    "Sophia",
    "Elijah",
    "Isabella",
    "Lucas",
    "Mia",
    "Mateo",
    "Charlotte",
    "Ethan",
    "Ava",
    "Leo",
    "Chloe",
    "Hugo",
    "Ingrid",
    "Jonas",
    "Camille",
    "Louis",
    "Sofia",
    "Marco",
    "Yuki",
    "Haruto",
    "Priya",
    "Arjun",
    "Aisha",
    "Omar",
    "Fatima",
    "Kwame",
    "Zanele",
    "Diego",
    "Valentina",
    "Mateus",
    "Freya",
    "Finn",
    "Aoife",
    "Cian",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Martin",
    "Tremblay",
    "Roy",
    "Gagnon",
    "Wilson",
    "Taylor",
    "Anderson",
    "Thomas",
    "Moore",
    "Jackson",
    "Nguyen",
    "Kim",
    "Patel",
    "Singh",
    "Müller",
    "Schmidt",
    "Rossi",
    "Bianchi",
    "Dubois",
    "Lefebvre",
    "Silva",
    "Santos",
    "Okafor",
    "Mensah",
    "Tanaka",
    "Sato",
    "O'Brien",
    "Murphy",
    "Kowalski",
    "Novak",
    "Jensen",
    "Larsen",
)
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")
NATIONALITIES = ("CA", "US", "GB", "AU", "NZ", "IE", "DE", "FR", "NL", "SE", "IT", "ES", "JP", "IN")

COUNTRIES = {
    "PT": "Portugal",
    "ES": "Spain",
    "IT": "Italy",
    "GR": "Greece",
    "HR": "Croatia",
    "CZ": "Czech Republic",
    "AT": "Austria",
    "HU": "Hungary",
    "GB": "Scotland",
    "IS": "Iceland",
    "TH": "Thailand",
    "VN": "Vietnam",
    "KH": "Cambodia",
    "JP": "Japan",
    "NP": "Nepal",
    "IN": "India",
    "LA": "Laos",
    "MA": "Morocco",
    "EG": "Egypt",
    "KE": "Kenya",
    "TZ": "Tanzania",
    "ZA": "South Africa",
    "PE": "Peru",
    "BO": "Bolivia",
    "EC": "Ecuador",
    "CL": "Chile",
    "AR": "Argentina",
    "BR": "Brazil",
    "CO": "Colombia",
    "MX": "Mexico",
    "CU": "Cuba",
    "CA": "Canada",
    "CR": "Costa Rica",
    "AU": "Australia",
    "NZ": "New Zealand",
    "JO": "Jordan",
    "TR": "Turkey",
    "OM": "Oman",
}
CITIES = {
    "Europe": (
        ("Lisbon", "PT"),
        ("Porto", "PT"),
        ("Madrid", "ES"),
        ("Seville", "ES"),
        ("Granada", "ES"),
        ("Rome", "IT"),
        ("Florence", "IT"),
        ("Venice", "IT"),
        ("Athens", "GR"),
        ("Santorini", "GR"),
        ("Dubrovnik", "HR"),
        ("Split", "HR"),
        ("Prague", "CZ"),
        ("Vienna", "AT"),
        ("Budapest", "HU"),
        ("Edinburgh", "GB"),
        ("Inverness", "GB"),
        ("Reykjavik", "IS"),
        ("Vik", "IS"),
    ),
    "Asia": (
        ("Bangkok", "TH"),
        ("Chiang Mai", "TH"),
        ("Hanoi", "VN"),
        ("Hoi An", "VN"),
        ("Ho Chi Minh City", "VN"),
        ("Siem Reap", "KH"),
        ("Phnom Penh", "KH"),
        ("Tokyo", "JP"),
        ("Kyoto", "JP"),
        ("Osaka", "JP"),
        ("Kathmandu", "NP"),
        ("Pokhara", "NP"),
        ("Delhi", "IN"),
        ("Jaipur", "IN"),
        ("Agra", "IN"),
        ("Luang Prabang", "LA"),
        ("Vientiane", "LA"),
    ),
    "Africa": (
        ("Marrakech", "MA"),
        ("Fes", "MA"),
        ("Chefchaouen", "MA"),
        ("Cairo", "EG"),
        ("Luxor", "EG"),
        ("Aswan", "EG"),
        ("Nairobi", "KE"),
        ("Masai Mara", "KE"),
        ("Arusha", "TZ"),
        ("Zanzibar", "TZ"),
        ("Cape Town", "ZA"),
        ("Kruger", "ZA"),
    ),
    "South America": (
        ("Lima", "PE"),
        ("Cusco", "PE"),
        ("Arequipa", "PE"),
        ("La Paz", "BO"),
        ("Uyuni", "BO"),
        ("Quito", "EC"),
        ("Galapagos", "EC"),
        ("Santiago", "CL"),
        ("Puerto Natales", "CL"),
        ("Buenos Aires", "AR"),
        ("Mendoza", "AR"),
        ("Rio de Janeiro", "BR"),
        ("Paraty", "BR"),
        ("Cartagena", "CO"),
        ("Medellin", "CO"),
    ),
    "North America": (
        ("Mexico City", "MX"),
        ("Oaxaca", "MX"),
        ("Merida", "MX"),
        ("Havana", "CU"),
        ("Trinidad", "CU"),
        ("Vancouver", "CA"),
        ("Banff", "CA"),
        ("San Jose", "CR"),
        ("Monteverde", "CR"),
    ),
    "Oceania": (
        ("Sydney", "AU"),
        ("Cairns", "AU"),
        ("Melbourne", "AU"),
        ("Auckland", "NZ"),
        ("Rotorua", "NZ"),
        ("Queenstown", "NZ"),
    ),
    "Middle East": (
        ("Amman", "JO"),
        ("Petra", "JO"),
        ("Wadi Rum", "JO"),
        ("Istanbul", "TR"),
        ("Cappadocia", "TR"),
        ("Muscat", "OM"),
        ("Nizwa", "OM"),
    ),
}
TOUR_NAMES = (
    "Best of {country}",
    "{country} Explorer",
    "{country} Highlights",
    "Classic {country}",
    "Discover {country}",
    "{country} Encompassed",
    "{first} to {last}",
    "{country} Uncovered",
    "Real {country}",
    "{country} Adventure",
)
PRODUCT_LINES = ("Classic", "Active", "Comfort", "Local Living", "Wildlife", "18 to 30s")


@dataclass(frozen=True)
class Person:
    first_name: str
    last_name: str
    email: str
    date_of_birth: str
    nationality: str


@dataclass(frozen=True)
class Tour:
    name: str
    duration_days: int
    region: str
    product_line: str
    cities: tuple[tuple[str, str], ...]


def random_date(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, (end - start).days))


def email_local(first_name: str, last_name: str) -> str:
    """`"Zoë", "O'Brien"` -> `"zoe.obrien"` (ASCII letters, digits and one dot)."""
    text = f"{first_name}.{last_name}".lower().replace("ü", "u").replace("ë", "e")
    return "".join(char for char in text if char.isascii() and (char.isalnum() or char == "."))


def people(count: int = 100) -> list[Person]:
    """Customers 1..count, in id order."""
    rng = random.Random(PEOPLE_SEED)
    result = []
    for number in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{email_local(first, last)}{number}@{rng.choice(EMAIL_DOMAINS)}"
        born = random_date(rng, date(1950, 1, 1), date(2004, 12, 31)).isoformat()
        result.append(Person(first, last, email, born, rng.choice(NATIONALITIES)))
    return result


def _tour(rng: random.Random) -> Tour:
    region = rng.choice(sorted(CITIES))
    code = rng.choice(sorted({country for _, country in CITIES[region]}))
    home = [city for city in CITIES[region] if city[1] == code]
    others = [city for city in CITIES[region] if city[1] != code]
    cities = tuple(home + rng.sample(others, rng.randint(0, 1)))
    name = rng.choice(TOUR_NAMES).format(
        country=COUNTRIES[code], first=cities[0][0], last=cities[-1][0]
    )
    duration = rng.randint(max(4, len(cities) + 2), 21)
    return Tour(name, duration, region, rng.choice(PRODUCT_LINES), cities)


def tours(count: int = 50) -> list[Tour]:
    """Tours 1..count, in id order, with distinct names."""
    rng = random.Random(TOURS_SEED)
    result: list[Tour] = []
    while len(result) < count:
        tour = _tour(rng)
        if all(tour.name != other.name for other in result):
            result.append(tour)
    return result
