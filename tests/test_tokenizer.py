"""The card-number tokenizer read as a property: random JSON documents (nested, doubles with long
fractions, big integers, escaped text, ids) with and without card numbers in every encoded form
go through the JVM tokenizer, and

- the output is valid JSON of the same structure,
- every byte outside a value that held a card number is unchanged (so every such value is
  byte-identical),
- each value that held one now holds the same text with the card's token in its place, and
- no card number survives in any form (the outside audit, ``lakehouse.audit``, reads it).

The documents are built here part by part, so the test knows which bytes must stay and which
value must change, without asking the tokenizer."""
from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.audit import clear_pans
from lakehouse.generators.world import luhn_check_digit

KEY = b"property-test-key"
HEX = "[0-9a-f]{64}"


def tok(digits: str) -> str:
    return hmac.new(KEY, digits.encode(), hashlib.sha256).hexdigest()


def luhn_ok(digits: str) -> bool:
    return luhn_check_digit(digits[:-1]) == digits[-1]


@pytest.fixture(scope="module")
def tokenize(spark):
    from lakehouse.jvm import set_pan_key

    pan = spark.sparkContext._jvm.finlake.Pan

    def run(data: bytes) -> bytes:
        set_pan_key(spark, KEY)   # other tests set their own keys in the same JVM
        return bytes(pan.tokenizeJson(bytearray(data)))

    return run


# -- card numbers and their disguises ---------------------------------------------------------

@st.composite
def pans(draw) -> str:
    length = draw(st.sampled_from([13, 15, 16, 16, 16, 19]))
    prefix = draw(st.sampled_from(["4", "51", "37", "6011", "35", "22"]))
    body = prefix + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=length - len(prefix) - 1,
                                          max_size=length - len(prefix) - 1)))
    return body + luhn_check_digit(body)


SEPARATORS = [" ", "-", "\\u0020", "\\u002d", "\\u0000", "\\u00a0", "\u00a0", "\u200b", "\\t", "\u3000", "\u2013"]


def _digit(d: str, script: str) -> str:
    if script == "ascii":
        return d
    if script == "escaped":
        return f"\\u003{d}"
    base = {"fullwidth": 0xFF10, "arabic": 0x660, "persian": 0x6F0, "devanagari": 0x966}[script]
    return chr(base + int(d))


@st.composite
def disguised(draw, pan: str) -> str:
    """The card number as JSON string content (escapes written out): grouped or not, with any
    separator, in any script, digits escaped or not, mixed."""
    scripts = draw(st.lists(st.sampled_from(["ascii", "ascii", "escaped", "fullwidth", "arabic", "persian", "devanagari"]),
                            min_size=1, max_size=2))
    digits = [_digit(d, draw(st.sampled_from(scripts))) for d in pan]
    layout = draw(st.sampled_from(["run", "fours", "amex"] if len(pan) == 15 else ["run", "fours"]))
    if layout == "run":
        return "".join(digits)
    sep = draw(st.sampled_from(SEPARATORS))
    cuts = [4, 10] if layout == "amex" else list(range(4, len(pan), 4))
    groups, last = [], 0
    for c in [*cuts, len(pan)]:
        groups.append("".join(digits[last:c]))
        last = c
    return sep.join(groups)


# -- values that hold no card number ----------------------------------------------------------

WORDS = st.sampled_from(["card", "paid", "terminal", "Zürich", "naïve", "東京", "\U0001F4B3", "tab\\there", "a \\\"quote\\\"",
                         "back\\\\slash", "\\u00e9t\\u00e9", "line\\nbreak", "x/y", "(ok)", "#7", "no."])
SHORT_NUMBERS = st.integers(0, 999_999).map(str)


@st.composite
def plain_text(draw) -> str:
    """JSON string content with no card number: words and numbers with no more than six digits
    in a row, decimals with long fractions, ids (16 Luhn-valid digits no network issues too),
    times, one of our own tokens."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(st.one_of(
            WORDS, WORDS,
            st.builds(lambda w, n: f"{w} {n}", WORDS, SHORT_NUMBERS),
            st.builds(lambda i, f: f"{i}.{f}", st.integers(-180, 180), st.from_regex(r"[0-9]{10,20}", fullmatch=True)),
            st.builds(lambda a, b: f"tx-{a}-0-{b:09d}", st.integers(100_000, 999_999), st.integers(0, 10**9 - 1)),
            st.just("2026-12-05T10:00:00.123456Z"),
            st.builds(lambda w, n: f"{w} {n}", WORDS, st.composite(lambda d: _unissued_id(d))()),
            st.just("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))))
    return " ".join(parts)


def _unissued_id(draw) -> str:
    body = draw(st.sampled_from(["1", "7", "9"])) + draw(st.from_regex(r"[0-9]{14}", fullmatch=True))
    return body + luhn_check_digit(body)


@st.composite
def plain_numbers(draw) -> str:
    """JSON numbers that are no card number: any fraction or exponent, integers that are not
    13-19 Luhn-valid digits, 16-digit Luhn-valid ids from a first digit no network issues."""
    kind = draw(st.sampled_from(["int", "big", "id", "fraction", "exponent", "double"]))
    if kind == "id":   # Luhn-valid, but from a first digit no card network issues
        return _unissued_id(draw)
    if kind == "int":
        return str(draw(st.integers(-10**12, 10**12)))
    if kind == "big":
        n = draw(st.integers(10**12, 10**24))
        text = str(n)
        return text if not (13 <= len(text) <= 19 and luhn_ok(text)) else text + "0" * (20 - len(text))
    if kind == "fraction":
        return f"{draw(st.integers(-180, 180))}.{draw(st.from_regex(r'[0-9]{1,20}', fullmatch=True))}"
    if kind == "exponent":
        return f"{draw(st.from_regex(r'-?[1-9][0-9]{0,18}', fullmatch=True))}e{draw(st.integers(-30, 30))}"
    return json.dumps(draw(st.floats(allow_nan=False, allow_infinity=False)))


# -- documents, part by part ------------------------------------------------------------------
# A part is ("lit", text) that must come back byte for byte, or a slot whose value must change:
# ("text", prefix, pan, suffix) a JSON string holding a card; ("int", pan) a card as a JSON
# number; ("pan", pan) a card_pan member.

WS = st.sampled_from(["", " ", "\n  "])


@st.composite
def string_value(draw):
    if draw(st.booleans()):
        return [("lit", '"' + draw(plain_text()) + '"')]
    pan = draw(pans())
    before = draw(st.sampled_from(["", "card ", "m-", "x", "(", "paid: "]))
    after = draw(st.sampled_from(["", " ok", "-x", "y", ")", " \\u00e9"]))
    return [("text", before, pan, draw(disguised(pan)), after)]


def scalar():
    return st.one_of(
        string_value(), string_value(),
        plain_numbers().map(lambda t: [("lit", t)]),
        pans().map(lambda p: [("int", p)]),
        st.sampled_from(["true", "false", "null"]).map(lambda t: [("lit", t)]))


def _object(children):
    @st.composite
    def build(draw):
        n = draw(st.integers(0, 4))
        parts, names = [("lit", "{" + draw(WS))], set()
        for i in range(n):
            kind = draw(st.sampled_from(["plain", "plain", "plain", "card_name", "card_pan"]))
            # member names stay unique after tokenizing too: one card number names one member
            pan = draw(pans())
            if (kind == "card_pan" and "card_pan" in names) or (kind == "card_name" and pan in names):
                kind = "plain"
            if len(parts) > 1:
                parts.append(("lit", "," + draw(WS)))
            if kind == "card_pan":
                names.add("card_pan")
                value = pan if draw(st.booleans()) else '"' + draw(disguised(pan)) + '"'
                parts.append(("pan", pan, '"card_pan"' + draw(WS) + ":" + draw(WS) + value))
                continue
            if kind == "card_name":
                names.add(pan)
                parts.append(("text", "", pan, draw(disguised(pan)), ""))
            else:
                parts.append(("lit", f'"k{i}_' + draw(plain_text()) + '"'))
            parts.append(("lit", draw(WS) + ":" + draw(WS)))
            parts.extend(draw(children))
        parts.append(("lit", draw(WS) + "}"))
        return parts
    return build()


def _array(children):
    @st.composite
    def build(draw):
        items = draw(st.lists(children, max_size=4))
        parts = [("lit", "[")]
        for i, item in enumerate(items):
            if i:
                parts.append(("lit", "," + draw(WS)))
            parts.extend(item)
        parts.append(("lit", "]"))
        return parts
    return build()


documents = st.recursive(scalar(), lambda children: st.one_of(_object(children), _array(children)), max_leaves=12)


def render(parts) -> tuple[str, str, list]:
    """(the document, a regular expression of what the tokenizer must return, the slots)."""
    text, pattern, slots = [], [], []
    for part in parts:
        if part[0] == "lit":
            text.append(part[1])
            pattern.append(re.escape(part[1]))
        elif part[0] == "text":
            _, before, pan, shown, after = part
            text.append('"' + before + shown + after + '"')
            pattern.append(r'("(?:[^"\\]|\\.)*")')
            slots.append(("text", json.loads('"' + before + '"') + tok(pan) + json.loads('"' + after + '"')))
        elif part[0] == "int":
            text.append(part[1])
            pattern.append(f'("{HEX}")')
            slots.append(("int", tok(part[1])))
        else:
            _, pan, member = part
            text.append(member)
            pattern.append(f'("card_token":"{HEX}","card_last4":"[0-9]{{4}}")')
            slots.append(("pan", pan))
    return "".join(text), "".join(pattern), slots


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(parts=documents)
def test_tokenized_json_keeps_every_other_byte_and_no_card_number(tokenize, parts):
    doc, pattern, slots = render(parts)
    pans_used = {p[2] for p in parts if p[0] == "text"} | {p[1] for p in parts if p[0] in ("int", "pan")}
    out = tokenize(doc.encode("utf-8")).decode("utf-8")
    # the same structure, still JSON
    before, after = json.loads(doc), json.loads(out)
    assert _shape(before) == _shape(after, pans_used)
    # every byte outside the slots unchanged; each slot holds what it must
    m = re.fullmatch(pattern, out, re.DOTALL)
    assert m, (doc, out)
    for (kind, want), got in zip(slots, m.groups()):
        if kind == "text":
            assert json.loads(got) == want
        elif kind == "int":
            assert got == f'"{want}"'
        else:
            member = json.loads("{" + got + "}")
            assert member == {"card_token": tok(want), "card_last4": want[-4:]}
    # no card number in any form, by the outside audit's own reading
    assert clear_pans(out, pans_used) == [] and clear_pans(out) == []


def _shape(value, pans=None):
    """The JSON structure with every leaf reduced to its kind (a card's token to 'text'), and
    the card_pan member to card_token + card_last4; names holding a card to one marker."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "card_pan":
                out["card_token"], out["card_last4"] = "text", "text"
                continue
            if k == "card_token" and pans is not None:
                out[k] = "text"
                continue
            named = "<card>" if re.search(HEX, k) or (pans is None and _holds_card(k)) else k
            out[named + f"#{len(out)}" if named == "<card>" else named] = _shape(v, pans)
        return out
    if isinstance(value, list):
        return [_shape(v, pans) for v in value]
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool) and _is_card_int(value)):
        return "text"
    return type(value).__name__


def _holds_card(name: str) -> bool:
    return bool(clear_pans(json.dumps(name)))


def _is_card_int(n: int) -> bool:
    text = str(abs(n))
    return 13 <= len(text) <= 19 and luhn_ok(text)


def test_text_tokenizer_reads_every_disguise_of_a_kafka_key(spark):
    """A Kafka key is free text: the same rule over its bytes (escapes, any script, separators)."""
    from lakehouse.jvm import set_pan_key

    set_pan_key(spark, KEY)
    pan_cls = spark.sparkContext._jvm.finlake.Pan
    pan = "5500000000000004"
    for key in ("5500 0000 0000 0004", "card:５５００-００００-００００-０００４", "5500\\u00200000\\u00200000\\u00200004",
                "٥٥٠٠٠٠٠٠٠٠٠٠٠٠٠٤", "a\x00" + pan):
        got = bytes(pan_cls.tokenizeText(bytearray(key.encode()))).decode()
        assert tok(pan) in got and clear_pans(got, {pan}) == [], (key, got)
    assert bytes(pan_cls.tokenizeText(bytearray(b"lat -29.5500000000000004"))) == b"lat -29.5500000000000004"
