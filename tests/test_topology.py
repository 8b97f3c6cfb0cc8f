"""The topology is declared once (lakehouse/topology.py) and everything else agrees with it:
the catalog's tables, the message schemas, the expectation suites, the ML use cases, and the
``finlake topology`` command."""
import json
import subprocess
import sys

import pytest

from lakehouse import topology
from lakehouse.catalog import Catalog
from lakehouse.config import load_config
from tests.conftest import ROOT

STREAMS = ["transactions", "tx_labels", "market_ticks", "user_events", "bureau_updates", "loan_applications"]


@pytest.fixture
def catalog(tmp_path):
    return Catalog(load_config("local", [], home=tmp_path))


def test_every_stream_has_its_tables_fed_from_its_topic(catalog):
    assert list(topology.STREAMS) == STREAMS
    for s in STREAMS:
        assert catalog.source_topic(f"bronze.{s}") == s
        assert catalog.spec(topology.stream_table("silver", s)).source == f"bronze.{s}"
        assert catalog.spec(topology.stream_table("quarantine", s)).source == f"bronze.{s}"
    # No table in the catalog is fed from a topic the topology does not know.
    fed = sorted(n for n in catalog.names() if (catalog.spec(n).source or "").startswith("kafka:"))
    assert fed == sorted(f"bronze.{s}" for s in STREAMS)
    assert sorted(n for n in catalog.names() if n.startswith("silver.")) == sorted(f"silver.{s}" for s in STREAMS)


def test_gold_views_use_cases_and_decision_paths_name_real_tables_suites_and_streams(catalog):
    from lakehouse.schemas.expectations import SCORING_SUITES

    assert {t: (v.driver, v.reads) for t, v in topology.GOLD_VIEWS.items()} == {
        "gold.card_features": ("transactions", ("user_events", "tx_labels")),
        "gold.market_features": ("market_ticks", ()),
        "gold.borrower_features": ("loan_applications", ("bureau_updates",)),
    }
    for view in topology.GOLD_VIEWS.values():
        assert catalog.spec(view.table).layer == "gold"
    for u in topology.USE_CASES.values():
        assert u.features in topology.GOLD_VIEWS, u.name
        assert catalog.spec(u.scores).layer == "gold", u.name
        assert u.gate in SCORING_SUITES, u.name
        if u.decision is not None:
            assert u.decision.use_case == u.name and u.decision.table == u.scores
            assert set(u.decision.streams) <= set(STREAMS)
            # The decision path reads the streams its gold view is built from.
            assert set(u.decision.streams) <= set(topology.GOLD_VIEWS[u.features].streams)
    assert list(topology.DECISION_PATHS) == ["fraud", "trading", "loan_pd"]
    assert topology.LAKEHOUSE_SCORED == ()
    assert topology.gold_views_for(["market_ticks", "tx_labels"]) == ["gold.market_features"]


def test_schemas_generators_and_ml_agree_with_the_topology():
    from lakehouse.generators.streams import DEFAULT_MIX
    from lakehouse.schemas.events import MESSAGE_KEY, MESSAGE_SCHEMAS
    from lakehouse.schemas.expectations import SUITES
    from ml.datasets import USE_CASES

    assert list(MESSAGE_SCHEMAS) == STREAMS and list(MESSAGE_KEY) == STREAMS and list(SUITES) == STREAMS
    assert set(DEFAULT_MIX) <= set(STREAMS)
    assert {n: u.features_table for n, u in USE_CASES.items()} == {n: u.features for n, u in topology.USE_CASES.items()}


@pytest.mark.parametrize("text, picked", [("all", STREAMS), (" market_ticks , tx_labels", ["market_ticks", "tx_labels"])])
def test_a_selection_parses(text, picked):
    assert topology.names("stream", text, topology.STREAMS) == picked


@pytest.mark.parametrize("text, message", [
    ("trades", "unknown stream 'trades' (known: transactions, tx_labels, market_ticks, user_events, bureau_updates, loan_applications, all)"),
    (" , ", "unknown stream ' , ' (known: transactions, tx_labels, market_ticks, user_events, bureau_updates, loan_applications, all)"),
])
def test_a_bad_selection_names_what_is_known(text, message):
    with pytest.raises(ValueError) as err:
        topology.names("stream", text, topology.STREAMS)
    assert str(err.value) == message


def test_the_topology_command_prints_it_with_this_environments_topics(tmp_path):
    import os

    env = dict(os.environ, FINLAKE_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "jobs/topology.py", "--conf", "kafka.topic_prefix=acme_", "--locations"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "  fraud: gold.card_features -> gold.fraud_scores; gate score_fraud; decides from transactions, user_events" \
           " -> topic fraud_decisions, alerts fraud_alerts" in lines
    assert "  loan_pd: gold.borrower_features -> gold.loan_pd_scores; gate score_loan_pd; decides from loan_applications," \
           " bureau_updates -> topic loan_decisions" in lines
    assert f"  silver.market_ticks: {tmp_path}/warehouse/silver/market_ticks" in lines
    result = json.loads(next(l for l in lines if l.startswith("FINLAKE_RESULT ")).split(" ", 1)[1])
    assert result["topics"] == {s: f"acme_{s}" for s in STREAMS}
    assert result["decision_paths"] == ["fraud", "trading", "loan_pd"] and result["lakehouse_scored"] == []
