"""The synthetic world the streams come from: customers with homes, cards and habits;
merchants and terminals with places and categories. Built deterministically from a seed."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

# (city, country, currency, lat, lon)
CITIES = [
    ("Paris", "FR", "EUR", 48.8566, 2.3522), ("Lyon", "FR", "EUR", 45.7640, 4.8357),
    ("Berlin", "DE", "EUR", 52.5200, 13.4050), ("Munich", "DE", "EUR", 48.1351, 11.5820),
    ("Madrid", "ES", "EUR", 40.4168, -3.7038), ("Milan", "IT", "EUR", 45.4642, 9.1900),
    ("Amsterdam", "NL", "EUR", 52.3676, 4.9041), ("London", "GB", "GBP", 51.5072, -0.1276),
    ("Manchester", "GB", "GBP", 53.4808, -2.2426), ("Dublin", "IE", "EUR", 53.3498, -6.2603),
    ("New York", "US", "USD", 40.7128, -74.0060), ("Chicago", "US", "USD", 41.8781, -87.6298),
    ("Toronto", "CA", "CAD", 43.6532, -79.3832), ("Singapore", "SG", "SGD", 1.3521, 103.8198),
    ("Sydney", "AU", "AUD", -33.8688, 151.2093), ("Sao Paulo", "BR", "BRL", -23.5505, -46.6333),
]
# mcc -> (description, log-amount shift, online share)
MCCS = {
    "5411": ("grocery", 0.0, 0.1), "5812": ("restaurants", 0.2, 0.05), "5814": ("fast food", -0.6, 0.1),
    "5541": ("fuel", 0.4, 0.0), "5999": ("retail", 0.3, 0.4), "5732": ("electronics", 1.4, 0.5),
    "5944": ("jewelry", 1.8, 0.2), "4111": ("transit", -1.0, 0.3), "5912": ("pharmacy", -0.2, 0.2),
    "4814": ("telecom", 0.5, 0.9), "5967": ("digital goods", -0.8, 1.0), "6011": ("cash", 1.0, 0.0),
}
HIGH_RISK_MCCS = ("5732", "5944", "5967")
BINS = ("4", "51", "52", "53", "54", "55")


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(pan: str) -> bool:
    return isinstance(pan, str) and pan.isdigit() and 12 <= len(pan) <= 19 and luhn_check_digit(pan[:-1]) == pan[-1]


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


@dataclass
class Card:
    pan: str
    card_id: str


@dataclass
class Customer:
    customer_id: str
    city: int
    lat: float
    lon: float
    cards: list[Card]
    amount_mu: float
    amount_sigma: float
    channel_weights: tuple[float, float, float]  # card_present, ecommerce, atm
    device_id: str
    activity: float
    favourite_mccs: list[str]


@dataclass
class Merchant:
    merchant_id: str
    mcc: str
    city: int
    lat: float
    lon: float
    online: bool
    terminals: list[str] = field(default_factory=list)


@dataclass
class World:
    seed: int
    customers: list[Customer]
    merchants: list[Merchant]
    merchants_by_city: dict[int, list[int]]
    online_merchants: list[int]
    terminal_owner: dict[str, int]
    customer_cum_weights: list[float]

    def currency(self, city: int) -> str:
        return CITIES[city][2]


def build_world(seed: int = 42, n_customers: int = 2000, n_merchants: int = 800) -> World:
    """Customers, cards, merchants and terminals; the same seed gives the same world."""
    rng = random.Random(f"world-{seed}")
    city_weights = [3, 1, 3, 1, 2, 2, 1, 3, 1, 1, 2, 1, 1, 1, 1, 1]
    merchants: list[Merchant] = []
    by_city: dict[int, list[int]] = {i: [] for i in range(len(CITIES))}
    online: list[int] = []
    owner: dict[str, int] = {}
    mcc_codes = list(MCCS)
    for m in range(n_merchants):
        city = rng.choices(range(len(CITIES)), city_weights)[0]
        mcc = rng.choice(mcc_codes)
        is_online = rng.random() < MCCS[mcc][2]
        _, _, _, lat, lon = CITIES[city]
        merchant = Merchant(f"m-{m:06d}", mcc, city, lat + rng.gauss(0, 0.05), lon + rng.gauss(0, 0.05), is_online)
        if not is_online:
            for t in range(rng.randint(1, 3)):
                tid = f"t-{m:06d}-{t}"
                merchant.terminals.append(tid)
                owner[tid] = m
            by_city[city].append(m)
        else:
            online.append(m)
        merchants.append(merchant)
    for city, lst in by_city.items():  # every city has somewhere to shop
        if not lst:
            _, _, _, lat, lon = CITIES[city]
            m = len(merchants)
            merchants.append(Merchant(f"m-{m:06d}", "5411", city, lat, lon, False, [f"t-{m:06d}-0"]))
            owner[f"t-{m:06d}-0"] = m
            lst.append(m)
    if not online:
        m = len(merchants)
        merchants.append(Merchant(f"m-{m:06d}", "5967", 0, CITIES[0][3], CITIES[0][4], True))
        online.append(m)

    customers: list[Customer] = []
    seen_pans: set[str] = set()
    for c in range(n_customers):
        city = rng.choices(range(len(CITIES)), city_weights)[0]
        _, _, _, lat, lon = CITIES[city]
        cards = []
        for k in range(1 if rng.random() < 0.7 else 2):
            while True:
                prefix = rng.choice(BINS)
                body = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
                pan = body + luhn_check_digit(body)
                if pan not in seen_pans:
                    seen_pans.add(pan)
                    break
            cards.append(Card(pan=pan, card_id=f"card-{c:06d}-{k}"))
        cp = rng.uniform(0.4, 0.8)
        ec = rng.uniform(0.1, 1 - cp - 0.02)
        customers.append(Customer(
            customer_id=f"cust-{c:06d}", city=city, lat=lat + rng.gauss(0, 0.04), lon=lon + rng.gauss(0, 0.04),
            cards=cards, amount_mu=rng.gauss(3.3, 0.5), amount_sigma=rng.uniform(0.6, 1.0),
            channel_weights=(cp, ec, 1 - cp - ec), device_id=f"dev-{c:06d}-0",
            activity=rng.paretovariate(2.5), favourite_mccs=rng.sample(mcc_codes, 4),
        ))
    cum, total = [], 0.0
    for cust in customers:
        total += cust.activity
        cum.append(total)
    return World(seed, customers, merchants, by_city, online, owner, cum)
