"""finlake statistics: PCA, VIF, t-tests, ANOVA, time-series diagnostics (pandas/numpy/statsmodels only)."""
