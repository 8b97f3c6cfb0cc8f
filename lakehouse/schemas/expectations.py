"""Expectation suites as code: the value rules each silver stream must meet, written once as
Great Expectations expectation configurations. ``lakehouse.quality`` runs them with Great
Expectations on every micro-batch and compiles the same configurations into row-level
predicates for quarantine reasons (a test checks the two agree)."""
from __future__ import annotations

from lakehouse.schemas.events import MESSAGE_SCHEMAS, SILVER_TRANSACTIONS

CHANNELS = ["card_present", "ecommerce", "atm", "moto", "contactless"]
USER_EVENT_TYPES = ["login", "logout", "page_view", "password_reset", "device_change", "payee_add"]
TERMS = [6, 12, 18, 24, 36, 48, 60, 72, 84, 120]


def _not_null(fields):
    return [{"type": "expect_column_values_to_not_be_null", "column": f.name} for f in fields if not f.nullable]


def _between(column, lo, hi):
    return {"type": "expect_column_values_to_be_between", "column": column, "min_value": lo, "max_value": hi}


def _in_set(column, values):
    return {"type": "expect_column_values_to_be_in_set", "column": column, "value_set": list(values)}


def _regex(column, regex):
    return {"type": "expect_column_values_to_match_regex", "column": column, "regex": regex}


# The least amount of a valid card transaction (setting quality.min_amount). 0.00 by default:
# zero-amount authorisations (account verification, card checks) are ordinary card traffic, and
# card testing hides among them. A deployment that wants them quarantined sets 0.01.
DEFAULT_MIN_AMOUNT = 0.0
MAX_AMOUNT = 1_000_000


def _silver_suites(min_amount: float) -> dict[str, list[dict]]:
    return {
        "transactions": _not_null(SILVER_TRANSACTIONS.fields) + [
            _regex("card_token", "^[0-9a-f]{64}$"),
            _regex("card_last4", "^[0-9]{4}$"),
            _regex("mcc", "^[0-9]{4}$"),
            _regex("currency", "^[A-Z]{3}$"),
            _regex("merchant_country", "^[A-Z]{2}$"),
            _between("amount", min_amount, MAX_AMOUNT),
            _in_set("channel", CHANNELS),
            _between("lat", -90, 90),
            _between("lon", -180, 180),
        ],
        "tx_labels": _not_null(MESSAGE_SCHEMAS["tx_labels"].fields),
        "market_ticks": _not_null(MESSAGE_SCHEMAS["market_ticks"].fields) + [
            _between("price", 0.000001, 10_000_000),
            _between("bid", 0.000001, 10_000_000),
            _between("ask", 0.000001, 10_000_000),
            _between("size", 1, 100_000_000),
            _between("bid_size", 0, 1_000_000_000),
            _between("ask_size", 0, 1_000_000_000),
            _regex("symbol", "^[A-Z0-9.]{1,12}$"),
        ],
        "user_events": _not_null(MESSAGE_SCHEMAS["user_events"].fields) + [
            _in_set("event_type", USER_EVENT_TYPES),
            _regex("ip_country", "^[A-Z]{2}$"),
        ],
        "bureau_updates": _not_null(MESSAGE_SCHEMAS["bureau_updates"].fields) + [
            _between("credit_score", 300, 850),
            _between("utilisation", 0, 5),
            _between("delinquencies", 0, 100),
            _between("inquiries_6m", 0, 100),
            _between("annual_income", 0, 100_000_000),
            _between("debt_to_income", 0, 10),
        ],
        "loan_applications": _not_null(MESSAGE_SCHEMAS["loan_applications"].fields) + [
            _between("loan_amount", 100, 10_000_000),
            _in_set("term_months", TERMS),
        ],
    }

# Gates of the scoring queries: the feature rows a model may score. A row that fails is
# quarantined (quarantine.scoring) with every reason instead of being scored on nonsense.
def _scoring_suites(min_amount: float) -> dict[str, list[dict]]:
    return {
        "score_fraud": [
            {"type": "expect_column_values_to_not_be_null", "column": c} for c in ("event_id", "event_time", "card_token", "amount", "tx_count_24h")
        ] + [
            _between("amount", min_amount, MAX_AMOUNT),
            _between("tx_count_10m", 1, 100_000),
            _between("km_from_home", 0, 20_100),
            _between("km_from_prev_tx", 0, 20_100),
            _between("seconds_since_prev_tx", 0, None),
            _between("is_ecommerce", 0, 1),
        ],
        "score_trading": [
            {"type": "expect_column_values_to_not_be_null", "column": c} for c in ("event_id", "event_time", "symbol", "spread_bps", "imbalance")
        ] + [
            _between("spread_bps", 0, 10_000),
            _between("imbalance", -1, 1),
            _between("realised_vol_20", 0, 1),
        ],
        "score_loan_pd": [
            {"type": "expect_column_values_to_not_be_null", "column": c} for c in ("event_id", "event_time", "loan_amount", "credit_score")
        ] + [
            _between("credit_score", 300, 850),
            _between("utilisation", 0, 5),
            _between("loan_to_income", 0, 1_000),
            _between("snapshot_age_s", 0, None),
        ],
    }


def suites(min_amount: float = DEFAULT_MIN_AMOUNT) -> dict[str, list[dict]]:
    """Every suite, the silver streams' and the scoring gates', for these settings: pure."""
    return {**_silver_suites(min_amount), **_scoring_suites(min_amount)}


SUITES: dict[str, list[dict]] = _silver_suites(DEFAULT_MIN_AMOUNT)
SCORING_SUITES: dict[str, list[dict]] = _scoring_suites(DEFAULT_MIN_AMOUNT)
ALL_SUITES: dict[str, list[dict]] = suites()


def suite_name(key: str) -> str:
    """The Great Expectations suite name of a SUITES key."""
    return f"finlake.gold.{key}" if key in SCORING_SUITES else f"finlake.silver.{key}"


def rule_name(expectation: dict) -> str:
    """A short, stable name for one expectation, used as a quarantine reason."""
    short = expectation["type"].replace("expect_column_values_to_", "")
    return f"{short}:{expectation['column']}"
