"""finlake statistics: PCA, VIF, paired tests, ANOVA, time-series diagnostics and reports.

Imports only pandas, numpy, scipy, statsmodels, matplotlib and the standard library.
Degenerate input raises StatsInputError with a one-line message naming the problem.
"""
from __future__ import annotations


class StatsInputError(ValueError):
    """Input a statistic cannot be computed on (constant column, too few rows, one group, NaN...)."""


# Defined before the submodules are imported: they import it from here.
from ._util import drop_constant, json_safe  # noqa: E402
from .anova import OneWayResult, TukeyResult, TwoWayResult, one_way_anova, tukey_hsd, two_way_anova  # noqa: E402
from .drift import DriftResult, drift, psi  # noqa: E402
from .compare import BootstrapResult, DeLongResult, PairedResult, delong_test, paired_bootstrap, paired_comparison  # noqa: E402
from .pca import PCAResult, pca_summary, scree_plot  # noqa: E402
from .report import STUDY_TABLE4, figure_to_data_uri, format_p, render_html, table4_markdown, write_json  # noqa: E402
from .timeseries import SeriesDiagnostics, acf_pacf_plot, diagnose_series, stl_plot  # noqa: E402
from .vif import VIFResult, vif_table  # noqa: E402

__all__ = [
    "StatsInputError", "drop_constant", "json_safe",
    "PCAResult", "pca_summary", "scree_plot",
    "VIFResult", "vif_table",
    "DriftResult", "drift", "psi",
    "PairedResult", "DeLongResult", "BootstrapResult", "paired_comparison", "delong_test", "paired_bootstrap",
    "OneWayResult", "TwoWayResult", "TukeyResult", "one_way_anova", "two_way_anova", "tukey_hsd",
    "SeriesDiagnostics", "diagnose_series", "acf_pacf_plot", "stl_plot",
    "STUDY_TABLE4", "figure_to_data_uri", "render_html", "table4_markdown", "format_p", "write_json",
]
