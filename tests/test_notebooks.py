"""Every notebook runs top to bottom on small parameters, against the real broker, Delta tables
and MLflow store, in one home (training before the notebooks that need a champion)."""
from __future__ import annotations

import pytest

from lakehouse.notebook import cells, run_notebook, widgets

from conftest import KAFKA_PORT, ML_GRID, ROOT

pytestmark = pytest.mark.kafka

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
SMALL = {
    "01_quickstart.py": {},
    "02_generators.py": {"COUNT": 3000},
    "03_pipeline.py": {"MESSAGES": 3000},
    "04_training.py": {"HISTORY": 20000, "FRAUD_RATE": 0.05, "USE_CASES": "fraud"},
    "05_decisions.py": {"TRANSACTIONS": 200, "RATE": 100, "WAIT_S": 300},
    "06_statistics.py": {"USE_CASES": "fraud"},
    "07_monitoring.py": {"USE_CASES": "fraud"},
}


def test_every_notebook_has_small_parameters_and_a_parameters_cell():
    assert sorted(SMALL) == [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        first = cells(path)[0]
        assert first.lstrip().startswith("# Parameters") and "widgets(" in first, path.name


def test_widgets_are_typed_like_their_defaults_and_unknown_ones_are_refused(monkeypatch):
    class Widgets:
        made = {}

        def text(self, name, default):
            self.made[name] = default

        def get(self, name):
            return {"COUNT": "12", "RATE": "2.5", "ON": "true"}.get(name, self.made[name])

    from lakehouse import notebook

    monkeypatch.setattr(notebook, "_dbutils", lambda: type("D", (), {"widgets": Widgets()})())
    assert widgets(COUNT=1, RATE=1.0, ON=False, NAME="x") == (12, 2.5, True, "x")
    monkeypatch.setattr(notebook, "_given", {"NOPE": 1})
    with pytest.raises(ValueError, match=r"unknown notebook parameter\(s\) \['NOPE'\]"):
        widgets(COUNT=1)


@pytest.fixture(scope="module")
def notebook_home(kafka, spark, cfg, tmp_path_factory):
    home = tmp_path_factory.mktemp("notebook_home")
    yield home
    from lakehouse.catalog import Catalog

    Catalog(cfg).register(spark)   # table names point back at the suite's home


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs_top_to_bottom(notebook_home, name):
    overrides = ["spark.shuffle_partitions=2", "security.pan_hmac_key_missing=generate", "kafka.topic_prefix=nb_",
                 "metrics.ports.stream=0", "metrics.ports.decide=0", "metrics.ports.score=0", *ML_GRID]
    env = {"FINLAKE_HOME": str(notebook_home), "FINLAKE_KAFKA_BOOTSTRAP": f"127.0.0.1:{KAFKA_PORT}"}
    ns = run_notebook(ROOT / "notebooks" / name, {**SMALL[name], "OVERRIDES": "; ".join(overrides)}, env=env)
    assert ns["cfg"].home == notebook_home
    checks = {
        "01_quickstart.py": lambda: len(ns["registered"]) > 10,
        "02_generators.py": lambda: ns["spark"].table("truth.fraud").count() > 0,
        "03_pipeline.py": lambda: ns["spark"].table("quarantine.transactions").count() > 0 and ns["result"]["tables"]["bronze.transactions"] > 0,
        "04_training.py": lambda: set(ns["trained"]) == {"fraud"},
        "05_decisions.py": lambda: ns["landed"] == ns["expected"] > 0,
        "06_statistics.py": lambda: "fraud" in str(ns["report"]["table4"]),
        "07_monitoring.py": lambda: ns["result"]["fraud"]["verdict"] in ("ok", "drifting", "degraded")
        and ns["spark"].table("ops.model_monitor").count() == ns["result"]["fraud"]["checks"],
    }
    assert checks[name]()
