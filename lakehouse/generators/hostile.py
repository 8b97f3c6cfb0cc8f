"""A fuzz corpus of hostile messages: what a careless or malicious producer can send.

Every message goes to a real topic; the pipeline must land each one in bronze, then in silver
or in quarantine with a reason (or count it as a duplicate), never stop, and never leave a card
number in the clear. ``pans`` lists every card number the corpus used, so a scan can prove none
survived anywhere.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone


def luhn_pan(rng: random.Random, length: int = 16, prefix: str = "4") -> str:
    """A random card number of ``length`` digits that passes the Luhn check."""
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return body + str((10 - total % 10) % 10)


@dataclass
class Corpus:
    messages: list[tuple[str, bytes | None, bytes | None]] = field(default_factory=list)  # (topic, key, value)
    pans: set[str] = field(default_factory=set)
    kinds: dict[str, int] = field(default_factory=dict)
    clean_ids: set[str] = field(default_factory=set)   # hostile-looking events that must reach silver

    def add(self, kind: str, topic: str, key, value) -> None:
        enc = lambda v: v if v is None or isinstance(v, bytes) else (v if isinstance(v, str) else json.dumps(v)).encode("utf-8", "surrogatepass")
        self.messages.append((topic, enc(key), enc(value)))
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hostile_corpus(n: int, seed: int = 7, now: datetime | None = None) -> Corpus:
    """``n`` messages: about a third clean transactions (so duplicates and conflicts have
    originals), the rest drawn from every hostile kind below."""
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    c = Corpus()

    def pan() -> str:
        p = luhn_pan(rng, rng.choice([13, 15, 16, 16, 16, 19]), rng.choice(["4", "51", "37", "6011"]))
        c.pans.add(p)
        return p

    def spaced(p: str) -> str:
        sep = rng.choice([" ", "-"])
        return sep.join(p[i:i + 4] for i in range(0, len(p), 4))

    def grouped(p: str, sep: str) -> str:
        return sep.join(p[i:i + 4] for i in range(0, len(p), 4))

    def script(p: str, zero: int) -> str:   # the digits of another script: full-width, Arabic-Indic
        return "".join(chr(zero + int(d)) if d.isdigit() else d for d in p)

    def escaped_separators(i: int) -> str:   # groups joined by \u0020, \u002d or \u0000 as JSON escapes
        sep = rng.choice(["\\u0020", "\\u002d", "\\u0000"])
        return json.dumps(tx(i, device_id="@PAN@")).replace('"@PAN@"', '"' + grouped(pan(), sep) + '"')

    def tx(i: int, **over) -> dict:
        t = now - timedelta(seconds=rng.uniform(0, 600))
        e = {"event_id": f"fz-{seed}-{i}", "event_time": _iso(t), "card_pan": pan(), "customer_id": f"c-{rng.randrange(500)}",
             "merchant_id": f"m-{rng.randrange(200)}", "merchant_country": "FR", "mcc": "5411",
             "amount": f"{rng.uniform(1, 500):.2f}", "currency": "EUR", "channel": "ecommerce", "terminal_id": None,
             "lat": 48.85, "lon": 2.35, "device_id": f"d-{rng.randrange(900)}"}
        e.update(over)
        return e

    def rename(e: dict, old: str, new: str) -> dict:
        return {(new if k == old else k): v for k, v in e.items()}

    sent: list[dict] = []
    hostile = [
        # card numbers where only a JSON parser would see them, or nowhere near card_pan
        ("pan_member_escaped", lambda i: json.dumps(tx(i)).replace('"card_pan"', '"card\\u005fpan"')),
        ("pan_member_upper", lambda i: rename(tx(i), "card_pan", "CARD_PAN")),
        ("pan_member_space", lambda i: rename(tx(i), "card_pan", "card_pan ")),
        ("pan_as_object", lambda i: tx(i, card_pan={"number": pan()})),
        ("pan_as_array", lambda i: tx(i, card_pan=[spaced(pan())])),
        ("pan_spaced", lambda i: tx(i, card_pan=spaced(pan()))),
        ("pan_in_merchant_id", lambda i: tx(i, merchant_id=f"m-{pan()}")),
        ("pan_in_device_id", lambda i: tx(i, device_id=spaced(pan()))),
        ("pan_in_terminal_id", lambda i: tx(i, terminal_id=pan())),
        ("pan_in_customer_id", lambda i: tx(i, customer_id=pan())),
        ("pan_in_event_id", lambda i: tx(i, event_id=f"fz-{pan()}")),
        ("pan_nested", lambda i: tx(i, extra={"deep": {"note": f"card {pan()} declined"}})),
        ("pan_whole_message", lambda i: pan()),
        ("pan_json_escaped_digits", lambda i: json.dumps(tx(i, merchant_id="m-" + "".join(f"\\u003{d}" for d in pan())))
         .replace("\\\\u", "\\u")),
        ("pan_escaped_separators", escaped_separators),
        ("pan_fullwidth", lambda i: tx(i, merchant_id="m-" + script(pan(), 0xFF10))),
        ("pan_arabic_indic", lambda i: tx(i, terminal_id=script(grouped(pan(), " "), 0x660))),
        ("pan_zero_width", lambda i: tx(i, device_id=grouped(pan(), "\u200b"))),
        ("pan_in_extras", lambda i: tx(i, extras={"note": f"card {spaced(pan())}"})),
        # clean events whose numbers trip a digit scan: 16-digit fractions (one in ten pass Luhn),
        # a 16-digit Luhn-valid id that no card network issues (from 1, 7 or 9)
        ("long_fractions", lambda i: tx(i, lat=round(rng.uniform(-60, 60), 16), lon=round(rng.uniform(-179, 179), 16),
                                        device_id=luhn_pan(rng, 16, rng.choice(["1", "7", "9"])),
                                        extras={"bill_lat": f"{rng.uniform(-60, 60):.16f}", "bill_lon": f"{rng.uniform(-179, 179):.16f}"})),
        ("pan_in_other_stream", lambda i: {"event_id": f"fz-ue-{i}", "event_time": _iso(now), "customer_id": pan(),
                                            "event_type": "login", "device_id": None, "ip_country": "FR", "session_id": None}),
        # sizes and shapes
        ("huge_pan_field", lambda i: tx(i, card_pan="4" * 2000)),
        ("huge_field", lambda i: tx(i, merchant_id="m" * rng.choice([2000, 100_000]))),
        ("huge_payload", lambda i: tx(i, blob="x" * 200_000)),
        ("deep_nesting", lambda i: "[" * 5000 + "]" * 5000),
        ("deep_object", lambda i: '{"a":' * 3000 + "1" + "}" * 3000),
        ("empty", lambda i: b""),
        ("null_value", lambda i: None),
        ("random_bytes", lambda i: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))),
        ("invalid_utf8_in_string", lambda i: json.dumps(tx(i)).encode()[:-2] + b'\xff\xfe"}'),
        # impossible or odd values
        ("year_10000", lambda i: tx(i, event_time="+10000-01-01T00:00:00Z")),
        ("year_1", lambda i: tx(i, event_time="0001-01-01T00:00:00Z")),
        ("not_a_time", lambda i: tx(i, event_time="yesterday")),
        ("nan_literal", lambda i: json.dumps(tx(i)).replace('"lat": 48.85', '"lat": NaN')),
        ("infinity_literal", lambda i: json.dumps(tx(i)).replace('"lon": 2.35', '"lon": Infinity')),
        ("huge_number", lambda i: json.dumps(tx(i)).replace('"lat": 48.85', '"lat": 1e400')),
        ("event_id_number", lambda i: tx(i, event_id=rng.randrange(10**6))),
        ("event_id_object", lambda i: tx(i, event_id={"a": 1})),
        ("event_id_bool", lambda i: tx(i, event_id=True)),
        ("amount_fullwidth", lambda i: tx(i, amount="１２３.４５")),
        ("amount_arabic", lambda i: tx(i, amount="١٢٣")),
        ("amount_exponent", lambda i: tx(i, amount=rng.choice(["1e3", 1e3]))),
        ("amount_padded", lambda i: tx(i, amount=" 5.00 ")),
        ("amount_overflow", lambda i: tx(i, amount="9" * 40)),
        ("unicode_edges", lambda i: tx(i, merchant_id=rng.choice(["\u202eevil", "a\u0000b", "\u200b", "\U0001F4B3", "\ud800"]))),
        ("duplicate_member", lambda i: json.dumps(tx(i))[:-1] + ', "event_id": "other"}'),
        ("not_an_object", lambda i: rng.choice(["[1,2]", '"text"', "42", "null", "true"])),
        ("truncated", lambda i: json.dumps(tx(i))[: rng.randrange(5, 60)]),
        ("pan_in_key", None),  # handled below: a clean event whose Kafka key is a card number
        ("exact_duplicate", None),
        ("conflicting_duplicate", None),
        ("replay_other_event_time", None),
    ]
    i = 0
    while len(c.messages) < n:
        i += 1
        if rng.random() < 0.35 or not sent:
            e = tx(i)
            sent.append(e)
            c.add("clean", "transactions", f"card-{i}", e)
            continue
        kind, make = hostile[rng.randrange(len(hostile))]
        if kind == "pan_in_key":
            e = tx(i)
            sent.append(e)
            c.add(kind, "transactions", rng.choice([pan(), f"card:{pan()}", spaced(pan())]), e)
        elif kind == "exact_duplicate":
            c.add(kind, "transactions", None, rng.choice(sent))
        elif kind == "conflicting_duplicate":
            orig = rng.choice(sent)
            c.add(kind, "transactions", None, dict(orig, amount=f"{float(orig['amount']) + 1:.2f}"))
        elif kind == "replay_other_event_time":
            orig = rng.choice(sent)
            c.add(kind, "transactions", None, dict(orig, event_time=_iso(now - timedelta(seconds=rng.uniform(601, 900)))))
        else:
            value = make(i)
            topic = "user_events" if kind == "pan_in_other_stream" else "transactions"
            c.add(kind, topic, rng.choice([None, f"k-{i}", pan()]) if kind.startswith("pan") else None, value)
            if kind == "long_fractions":
                c.clean_ids.add(json.loads(value)["event_id"] if isinstance(value, str) else value["event_id"])
    return c
