"""A small, seeded sample of card transactions for the skeleton demo and wiring tests.

The full generators (fraud scenarios, markets, user events, bureau, ground truth) build on
the same message schema in ``lakehouse/schemas/events.py``.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone


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
    return pan.isdigit() and len(pan) >= 12 and luhn_check_digit(pan[:-1]) == pan[-1]


def sample_transactions(n: int, seed: int = 7, start: datetime | None = None, run: str = "r0") -> list[dict]:
    """``n`` well-formed transaction messages; the same seed gives the same events."""
    rng = random.Random(seed)
    start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
    cards = []
    for c in range(max(1, n // 5)):
        body = "4" + "".join(str(rng.randrange(10)) for _ in range(14))
        cards.append((body + luhn_check_digit(body), f"cust-{c:05d}"))
    events = []
    t = start
    for i in range(n):
        pan, customer = cards[rng.randrange(len(cards))]
        t += timedelta(milliseconds=rng.randrange(1, 2000))
        channel = rng.choice(["card_present", "ecommerce", "atm"])
        events.append({
            "event_id": f"tx-{run}-{seed}-{i:08d}",
            "event_time": t.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "card_pan": pan,
            "customer_id": customer,
            "merchant_id": f"m-{rng.randrange(200):04d}",
            "mcc": rng.choice(["5411", "5812", "5999", "4111", "6011"]),
            "amount": f"{rng.lognormvariate(3.2, 1.0):.2f}",
            "currency": "EUR",
            "channel": channel,
            "terminal_id": f"t-{rng.randrange(500):05d}" if channel != "ecommerce" else None,
            "lat": round(48.85 + rng.uniform(-0.5, 0.5), 5),
            "lon": round(2.35 + rng.uniform(-0.5, 0.5), 5),
            "device_id": f"d-{rng.randrange(1000):05d}" if channel == "ecommerce" else None,
        })
    return events
