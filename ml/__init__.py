"""finlake ML: training sets, estimators, evaluation, registry, scoring, drift (imports lakehouse)."""
