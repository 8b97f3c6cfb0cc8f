"""Unit tests for the pure stats package: every statistic against a case with a known answer."""
from __future__ import annotations

import ast
import itertools
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats as st  # noqa: E402

import stats  # noqa: E402
from stats import StatsInputError  # noqa: E402

STATS_DIR = Path(__file__).resolve().parent.parent / "stats"


# ---------------------------------------------------------------- package rules

def test_stats_imports_only_allowed_packages():
    allowed = {"pandas", "numpy", "scipy", "statsmodels", "matplotlib", "__future__"} | set(sys.stdlib_module_names)
    for path in STATS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [node.module.split(".")[0]]
            else:
                continue
            assert set(roots) <= allowed, f"{path.name} imports {roots}"


def test_stats_input_error_is_a_value_error():
    assert issubclass(StatsInputError, ValueError)


# ---------------------------------------------------------------- VIF

def _independent(n=2000, p=4, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.standard_normal((n, p)), columns=[f"x{i + 1}" for i in range(p)])


def test_vif_near_one_for_independent_columns():
    res = stats.vif_table(_independent())
    assert all(abs(v - 1) < 0.1 for v in res.vif.values())
    assert res.over_5 == [] and res.reduced == ["x1", "x2", "x3", "x4"] and res.dropped_for_reduction == []
    assert abs(res.median - 1) < 0.1


def test_vif_large_for_collinear_column_and_reduction_drops_it():
    df = _independent()
    rng = np.random.default_rng(2)
    df["x3"] = df["x1"] + df["x2"] + 0.01 * rng.standard_normal(len(df))
    res = stats.vif_table(df)
    assert res.vif["x3"] > 50 and res.vif["x4"] < 1.1
    assert set(res.over_10) == {"x1", "x2", "x3"}
    assert res.dropped_for_reduction == ["x3"] and res.reduced == ["x1", "x2", "x4"]
    assert res.perfectly_collinear == []


def test_vif_equals_diagonal_of_inverse_correlation():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 4)) @ rng.standard_normal((4, 4))
    df = pd.DataFrame(x, columns=list("abcd"))
    expected = np.diag(np.linalg.inv(np.corrcoef(x, rowvar=False)))
    assert np.allclose(list(stats.vif_table(df).vif.values()), expected, rtol=1e-8)


def test_vif_perfect_collinearity_is_flagged_not_a_crash():
    df = _independent(n=300)
    df["x3"] = df["x1"] + df["x2"]
    res = stats.vif_table(df)
    assert res.perfectly_collinear == ["x1", "x2", "x3"]
    assert math.isinf(res.vif["x3"])
    assert res.dropped_for_reduction == ["x3"]
    d = res.to_dict()
    assert d["vif"]["x3"] is None and d["perfectly_collinear"] == ["x1", "x2", "x3"]
    json.dumps(d, allow_nan=False)


def test_vif_degenerate_inputs():
    df = _independent(n=50)
    df["c"] = 3.0
    with pytest.raises(StatsInputError, match=r"^VIF: column 'c' is constant"):
        stats.vif_table(df)
    with pytest.raises(StatsInputError, match=r"VIF needs at least 2 columns, got 1"):
        stats.vif_table(_independent(p=1))
    with pytest.raises(StatsInputError, match=r"VIF needs more complete rows than columns \(4\), got 3"):
        stats.vif_table(_independent(n=3))
    with pytest.raises(StatsInputError, match=r"VIF: no complete rows \(all 5 rows contain NaN or inf\)"):
        stats.vif_table(pd.DataFrame({"a": [np.nan] * 5, "b": [np.nan] * 5}))
    with pytest.raises(StatsInputError, match=r"VIF: column 's' is not numeric"):
        stats.vif_table(pd.DataFrame({"a": [1.0, 2.0, 3.0], "s": ["x", "y", "z"]}))


def test_drop_constant_reports_what_it_dropped():
    df = _independent(n=100)
    df["c"] = 1.0
    df["allnan"] = np.nan
    kept, dropped = stats.drop_constant(df)
    assert dropped == ["c", "allnan"] and list(kept.columns) == ["x1", "x2", "x3", "x4"]
    assert stats.vif_table(kept).reduced == ["x1", "x2", "x3", "x4"]


# ---------------------------------------------------------------- PCA

def _two_blocks(n=20000, seed=4):
    # Block sizes 3 and 2, within-block correlation 1/(1+0.25) = 0.8: eigenvalues 2.6, 1.8, 0.2, 0.2, 0.2.
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, 2))
    noise = 0.5 * rng.standard_normal((n, 5))
    x = np.column_stack([f[:, 0], f[:, 0], f[:, 0], f[:, 1], f[:, 1]]) + noise
    return pd.DataFrame(x * [1, 10, 100, 0.1, 1], columns=["a1", "a2", "a3", "b1", "b2"])


def test_pca_explained_shares_match_known_correlation_eigenvalues():
    df = _two_blocks()
    res = stats.pca_summary(df, variance_target=0.9)
    assert np.allclose(res.explained_ratio, [0.52, 0.36, 0.04, 0.04, 0.04], atol=0.01)
    assert np.allclose(res.explained_ratio, np.linalg.eigvalsh(np.corrcoef(df.to_numpy(), rowvar=False))[::-1] / 5,
                       atol=1e-10)
    assert res.n_components == 3 and res.cumulative_at_k >= 0.9 and res.cumulative[1] < 0.9
    assert stats.pca_summary(df, variance_target=0.85).n_components == 2
    assert stats.pca_summary(df, variance_target=1.0).n_components == 5
    assert list(res.loadings.columns) == ["PC1", "PC2", "PC3"] and list(res.loadings.index) == res.features
    # PC1 is block a (equal weights 1/sqrt(3), positive by the sign rule); PC2 is block b.
    assert np.allclose(res.loadings["PC1"][["a1", "a2", "a3"]], 1 / np.sqrt(3), atol=0.01)
    assert np.allclose(res.loadings["PC2"][["b1", "b2"]], 1 / np.sqrt(2), atol=0.01)
    for pc in res.loadings.columns:
        col = res.loadings[pc]
        assert col[col.abs().idxmax()] > 0
    assert res.rows_used == 20000 and res.rows_dropped == 0


def test_pca_drops_and_counts_rows_with_nan():
    df = _two_blocks(n=500)
    df.iloc[[3, 10, 42], 1] = np.nan
    df.iloc[7, 4] = np.inf
    res = stats.pca_summary(df)
    assert (res.rows_used, res.rows_dropped) == (496, 4)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["rows_dropped"] == 4 and set(d["loadings"]) == {f"PC{i + 1}" for i in range(res.n_components)}


def test_pca_degenerate_inputs():
    df = _two_blocks(n=100)
    df["const"] = 7
    with pytest.raises(StatsInputError, match=r"^PCA: column 'const' is constant"):
        stats.pca_summary(df)
    with pytest.raises(StatsInputError, match=r"PCA needs at least 3 complete rows, got 2"):
        stats.pca_summary(_two_blocks(n=2))
    with pytest.raises(StatsInputError, match=r"PCA: no complete rows"):
        stats.pca_summary(pd.DataFrame({"a": [np.nan] * 4, "b": [1.0, 2, 3, 4]}))
    with pytest.raises(StatsInputError, match=r"variance_target must be in \(0, 1\]"):
        stats.pca_summary(_two_blocks(n=100), variance_target=1.5)
    with pytest.raises(StatsInputError, match=r"the DataFrame has no columns"):
        stats.pca_summary(pd.DataFrame(index=range(5)))


def test_scree_plot_is_a_figure():
    fig = stats.scree_plot(stats.pca_summary(_two_blocks(n=300)))
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert stats.figure_to_data_uri(fig).startswith("data:image/png;base64,")


# ---------------------------------------------------------------- paired comparison and DeLong

MODEL = [0.812, 0.834, 0.801, 0.851, 0.823, 0.817, 0.829, 0.840, 0.808, 0.826]
BASELINE = [0.781, 0.802, 0.790, 0.811, 0.799, 0.806, 0.801, 0.812, 0.800, 0.795]


def test_paired_comparison_equals_scipy():
    res = stats.paired_comparison(MODEL, BASELINE, metric="auc")
    t, p = st.ttest_rel(MODEL, BASELINE)
    w = st.wilcoxon(MODEL, BASELINE)
    d = np.subtract(MODEL, BASELINE)
    assert res.t == pytest.approx(t, rel=1e-12) and res.p == pytest.approx(p, rel=1e-12)
    assert res.wilcoxon_stat == pytest.approx(w.statistic) and res.wilcoxon_p == pytest.approx(w.pvalue, rel=1e-12)
    assert res.mean_diff == pytest.approx(d.mean()) and res.cohens_dz == pytest.approx(d.mean() / d.std(ddof=1))
    assert res.n_folds == 10 and res.metric == "auc" and res.note is None
    json.dumps(res.to_dict(), allow_nan=False)


def test_paired_comparison_zero_differences_gives_none_with_note():
    res = stats.paired_comparison([0.8, 0.7, 0.9], [0.8, 0.7, 0.9], metric="auc")
    assert res.t is None and res.p is None and res.wilcoxon_p is None and res.cohens_dz is None
    assert "all differences are zero" in res.note
    assert res.to_dict()["wilcoxon_p"] is None


def test_paired_comparison_constant_difference_gives_no_t_but_keeps_wilcoxon():
    # 0.9 - 0.8 and 0.7 - 0.6 differ in the 17th digit; that is rounding, not variance.
    res = stats.paired_comparison([0.9, 0.8, 0.7], [0.8, 0.7, 0.6], metric="auc")
    assert res.t is None and res.cohens_dz is None and res.sd_diff == 0
    assert res.wilcoxon_p == pytest.approx(st.wilcoxon([0.1, 0.1, 0.1]).pvalue)
    assert "same difference" in res.note


def test_paired_comparison_degenerate_inputs():
    with pytest.raises(StatsInputError, match=r"^paired t-test needs at least 2 folds, got 1$"):
        stats.paired_comparison([0.8], [0.7], metric="auc")
    with pytest.raises(StatsInputError, match=r"model has 3 folds but baseline has 2"):
        stats.paired_comparison([0.8, 0.7, 0.9], [0.7, 0.6], metric="auc")
    with pytest.raises(StatsInputError, match=r"model scores contain 1 NaN"):
        stats.paired_comparison([0.8, np.nan], [0.7, 0.6], metric="auc")


def _slow_delong(y, a, b):
    """Textbook O(m*n) DeLong (1988) with the Heaviside kernel, as the reference."""
    pos, neg = y == 1, y == 0
    comps = []
    for s in (a, b):
        psi = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        comps.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    (auc_a, v10a, v01a), (auc_b, v10b, v01b) = comps
    s10, s01 = np.cov(v10a, v10b), np.cov(v01a, v01b)
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / pos.sum() + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / neg.sum()
    return auc_a, auc_b, (auc_a - auc_b) / np.sqrt(var)


def _scores(n=400, seed=5):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    # Rounded so that ties occur and the midrank handling is exercised.
    a = np.round(1.2 * y + rng.standard_normal(n), 1)
    b = np.round(0.5 * y + rng.standard_normal(n), 1)
    return y, a, b


def test_delong_matches_sklearn_auc_and_textbook_delong():
    from sklearn.metrics import roc_auc_score

    y, a, b = _scores()
    res = stats.delong_test(y, a, b)
    assert res.auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert res.auc_b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    auc_a, auc_b, z = _slow_delong(y, a, b)
    assert res.z == pytest.approx(z, rel=1e-9)
    assert res.p == pytest.approx(2 * st.norm.sf(abs(z)), rel=1e-9)
    assert res.p < 0.01 and res.n_pos + res.n_neg == 400


def test_delong_identical_scores_give_z_zero_p_one():
    y, a, _ = _scores()
    res = stats.delong_test(y, a, a)
    assert res.z == 0 and res.p == 1 and res.auc_diff == 0
    assert stats.delong_test(y, a, 3 * a + 1).z == 0  # a monotone transform ranks alike


def test_delong_degenerate_inputs():
    with pytest.raises(StatsInputError, match=r"y_true has a single class \(1\)"):
        stats.delong_test([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1])
    with pytest.raises(StatsInputError, match=r"at least 2 positives and 2 negatives, got 1 and 3"):
        stats.delong_test([1, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1])
    with pytest.raises(StatsInputError, match=r"only 0 and 1"):
        stats.delong_test([1, 2, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1])
    with pytest.raises(StatsInputError, match=r"score_b contain 1 NaN"):
        stats.delong_test([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.4, np.nan, 0.2, 0.1])


# ---------------------------------------------------------------- ANOVA

def _search(seed=6, folds=5):
    rng = np.random.default_rng(seed)
    rows = []
    for md, lr, ne in itertools.product([3, 6], [0.05, 0.1, 0.3], [100, 200]):
        effect = 0.02 * (md == 6) + {0.05: 0.0, 0.1: 0.01, 0.3: -0.015}[lr] + 0.01 * (md == 6) * (lr == 0.3)
        for fold in range(folds):
            rows.append({"fold": fold, "max_depth": md, "learning_rate": lr, "n_estimators": ne,
                         "metric": 0.80 + effect + 0.005 * rng.standard_normal()})
    return pd.DataFrame(rows)


def test_one_way_anova_equals_scipy():
    search = _search()
    res = stats.one_way_anova(search)
    groups = [g["metric"].to_numpy() for _, g in search.groupby(["max_depth", "learning_rate", "n_estimators"])]
    f, p = st.f_oneway(*groups)
    assert res.F == pytest.approx(f, rel=1e-12) and res.p == pytest.approx(p, rel=1e-9)
    assert (res.groups, res.df_between, res.df_within, res.n_rows) == (12, 11, 48, 60)
    by_depth = stats.one_way_anova(search, factor="max_depth")
    f, p = st.f_oneway(*[g["metric"] for _, g in search.groupby("max_depth")])
    assert by_depth.F == pytest.approx(f, rel=1e-12) and by_depth.groups == 2
    json.dumps(res.to_dict(), allow_nan=False)


def test_two_way_anova_equals_statsmodels():
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    search = _search()
    res = stats.two_way_anova(search)
    ref = anova_lm(ols("metric ~ C(max_depth) * C(learning_rate)", data=search).fit(), typ=2)
    assert [r["source"] for r in res.table] == ["max_depth", "learning_rate", "max_depth:learning_rate", "Residual"]
    for rec, (_, row) in zip(res.table, ref.iterrows()):
        assert rec["sum_sq"] == pytest.approx(row["sum_sq"], rel=1e-9) and rec["df"] == row["df"]
        if rec["source"] != "Residual":
            assert rec["F"] == pytest.approx(row["F"], rel=1e-9) and rec["p"] == pytest.approx(row["PR(>F)"], rel=1e-6)
    assert res.table[-1]["F"] is None and res.table[-1]["p"] is None
    # Balanced design: the type II sums of squares add up to the total.
    total = ((search["metric"] - search["metric"].mean()) ** 2).sum()
    assert sum(r["sum_sq"] for r in res.table) == pytest.approx(total, rel=1e-9)
    json.dumps(res.to_dict(), allow_nan=False)


def test_tukey_returns_every_pair_with_its_mean_difference():
    search = _search()
    res = stats.tukey_hsd(search, factor="learning_rate")
    means = search.groupby("learning_rate")["metric"].mean()
    assert [(r["group1"], r["group2"]) for r in res.pairs] == [(0.05, 0.1), (0.05, 0.3), (0.1, 0.3)]
    for r in res.pairs:
        assert r["meandiff"] == pytest.approx(means[r["group2"]] - means[r["group1"]], abs=1e-12)
        assert r["lower"] < r["meandiff"] < r["upper"]
    assert next(r for r in res.pairs if r["group1"] == 0.1)["reject"] is True
    assert len(stats.tukey_hsd(search).pairs) == 12 * 11 // 2


def test_anova_degenerate_inputs():
    search = _search()
    one = search[(search.max_depth == 3) & (search.learning_rate == 0.1) & (search.n_estimators == 100)]
    with pytest.raises(StatsInputError, match=r"^one-way ANOVA needs at least 2 settings, got 1$"):
        stats.one_way_anova(one)
    with pytest.raises(StatsInputError, match=r"Tukey HSD needs at least 2 levels of 'max_depth', got 1"):
        stats.tukey_hsd(search[search.max_depth == 3], factor="max_depth")
    single_fold = search[search.fold == 0]
    with pytest.raises(StatsInputError, match=r"one-way ANOVA: group 'max_depth=3, learning_rate=0.05, "
                                              r"n_estimators=100' has 1 row"):
        stats.one_way_anova(single_fold)
    with pytest.raises(StatsInputError, match=r"two-way ANOVA needs at least 2 levels of 'learning_rate', got 1"):
        stats.two_way_anova(search[search.learning_rate == 0.1])
    with pytest.raises(StatsInputError, match=r"cell \(max_depth=6, learning_rate=0.3\) has 0 row"):
        stats.two_way_anova(search[~((search.max_depth == 6) & (search.learning_rate == 0.3))])
    with pytest.raises(StatsInputError, match=r"column 'metric' is constant"):
        stats.one_way_anova(search.assign(metric=0.5))
    with pytest.raises(StatsInputError, match=r"column 'metric' has 1 missing value"):
        stats.one_way_anova(search.assign(metric=search["metric"].where(search.index != 3)))
    with pytest.raises(StatsInputError, match=r"search has no column\(s\) 'n_estimators'"):
        stats.one_way_anova(search.drop(columns="n_estimators"))


# ---------------------------------------------------------------- time series

def _ar1(phi, n=500, seed=0):
    rng = np.random.default_rng(seed)
    e, x = rng.standard_normal(n), np.zeros(n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return pd.Series(x)


def test_ljung_box_and_adf_on_white_noise_ar1_and_random_walk():
    from statsmodels.stats.diagnostic import acorr_ljungbox
    from statsmodels.tsa.stattools import acf

    noise = pd.Series(np.random.default_rng(0).standard_normal(500))
    wn = stats.diagnose_series(noise, period=12)
    ref = acorr_ljungbox(noise.to_numpy(), lags=[20], return_df=True)
    assert wn.ljung_box_stat == pytest.approx(ref["lb_stat"].iloc[0], rel=1e-12)
    assert wn.ljung_box_p == pytest.approx(ref["lb_pvalue"].iloc[0], rel=1e-9)
    assert wn.ljung_box_p > 0.05 and wn.adf_p < 0.01
    assert np.allclose(wn.acf, acf(noise.to_numpy(), nlags=20, fft=True)) and len(wn.pacf) == 21
    assert set(wn.adf_critical) == {"1%", "5%", "10%"}
    assert stats.diagnose_series(_ar1(0.8), period=12).ljung_box_p < 0.001
    walk = pd.Series(np.cumsum(np.random.default_rng(0).standard_normal(500)))
    assert stats.diagnose_series(walk, period=12).adf_p > 0.1
    json.dumps(wn.to_dict(), allow_nan=False)


def test_stl_strengths_for_seasonal_and_trending_series():
    t = np.arange(240)
    noise = 0.1 * np.random.default_rng(1).standard_normal(240)
    seasonal = stats.diagnose_series(pd.Series(np.sin(2 * np.pi * t / 12) + noise), period=12)
    trending = stats.diagnose_series(pd.Series(0.05 * t + noise), period=12)
    assert seasonal.seasonal_strength > 0.9 and trending.trend_strength > 0.9
    assert trending.seasonal_strength < 0.5


def test_time_series_degenerate_inputs():
    with pytest.raises(StatsInputError, match=r"need at least 42 observations \(period 12, lags 20\), got 30"):
        stats.diagnose_series(pd.Series(np.arange(30.0)), period=12)
    with pytest.raises(StatsInputError, match=r"series has 1 NaN/inf value"):
        stats.diagnose_series(pd.Series([1.0, np.nan] + list(range(60))), period=12)
    with pytest.raises(StatsInputError, match=r"series is constant"):
        stats.diagnose_series(pd.Series(np.ones(100)), period=12)
    with pytest.raises(StatsInputError, match=r"period must be an integer >= 2"):
        stats.diagnose_series(pd.Series(np.arange(100.0)), period=1)
    with pytest.raises(StatsInputError, match=r"series has 40 NaN/inf"):
        stats.diagnose_series(pd.Series([np.nan] * 40), period=12, lags=5)


def test_time_series_plots():
    idx = pd.date_range("2024-01-01", periods=120, freq="h")
    series = pd.Series(np.sin(np.arange(120) * 2 * np.pi / 24) + np.random.default_rng(2).normal(0, 0.2, 120),
                       index=idx)
    fig = stats.acf_pacf_plot(stats.diagnose_series(series, period=24, lags=10))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(stats.stl_plot(series, period=24).axes) == 4


# ---------------------------------------------------------------- report

def test_figure_to_data_uri_closes_pyplot_figures():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    uri = stats.figure_to_data_uri(fig)
    assert uri.startswith("data:image/png;base64,") and not plt.fignum_exists(fig.number)


def test_render_html_is_self_contained_and_escaped():
    uri = stats.figure_to_data_uri(stats.scree_plot(stats.pca_summary(_two_blocks(n=200))))
    page = stats.render_html("finlake <report>", [
        {"heading": "PCA & VIF", "text": "x < y & \"z\"\n\nsecond paragraph",
         "tables": [pd.DataFrame({"a": [1.5, np.nan]}), [{"k": "v", "n": None}]], "figures": [uri]},
        {"heading": "Tests", "text": None, "tables": [], "figures": []},
    ])
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<h1>finlake &lt;report&gt;</h1>" in page and "<h2>PCA &amp; VIF</h2>" in page and "<h2>Tests</h2>" in page
    assert "x &lt; y &amp; &quot;z&quot;" in page and "<p>second paragraph</p>" in page
    assert '<img src="data:image/png;base64,' in page and "<td>–</td>" in page and ">1.5<" in page
    assert "<script" not in page and "http" not in page
    with pytest.raises(StatsInputError, match=r"figure 0 of section 'x' is not a data:image URI"):
        stats.render_html("t", [{"heading": "x", "figures": ["plot.png"]}])


def test_table4_markdown_has_study_and_ours_with_dash_for_missing():
    md = stats.table4_markdown([
        {"use_case": "fraud", "ours": {"n_components": 7, "cumulative_pct": 90.24, "median_vif": 1.93,
                                       "paired_p": 0.0004, "anova_f": 12.34}},
        {"use_case": "trading", "ours": {"n_components": 5, "cumulative_pct": None, "median_vif": float("nan"),
                                         "paired_p": 0.0123, "anova_f": None}},
        {"use_case": "loan_pd", "ours": {}},
    ])
    lines = md.strip().splitlines()
    assert len(lines) == 5 and lines[0].count("|") == 7 and "study / ours" in lines[0]
    assert lines[2] == "| fraud | 8 / 7 | 91.4 / 90.2 | 2.1 / 1.9 | <0.001 / <0.001 | 11.7 / 12.3 |"
    assert lines[3] == "| trading | 5 / 5 | 88.3 / – | 1.7 / – | 0.003 / 0.012 | 9.4 / – |"
    assert lines[4] == "| loan_pd | 6 / – | 89.6 / – | 2.3 / – | 0.015 / – | 7.8 / – |"
    with pytest.raises(StatsInputError, match=r"unknown use_case 'credit'"):
        stats.table4_markdown([{"use_case": "credit", "ours": {}}])


def test_format_p():
    assert [stats.format_p(p) for p in (0.0004, 0.001, 0.01234, None, float("nan"))] == \
        ["<0.001", "0.001", "0.012", "–", "–"]


def test_write_json_replaces_nan_and_inf(tmp_path):
    res = stats.vif_table(pd.DataFrame({"a": [1.0, 2, 3, 4, 5], "b": [2.0, 4, 6, 8, 10], "c": [1.0, 0, 1, 0, 2]}))
    path = stats.write_json({"x": np.nan, "y": [np.inf, np.float32(1.5)], "n": np.int64(3), "vif": res},
                            tmp_path / "out" / "r.json")
    data = json.loads(path.read_text())
    assert data["x"] is None and data["y"] == [None, 1.5] and data["n"] == 3
    assert data["vif"]["vif"]["a"] is None and data["vif"]["perfectly_collinear"] == ["a", "b"]


def test_psi_by_hand_and_drift_grows_with_the_shift():
    import numpy as np

    from stats import drift, psi

    # reference 60% zeros / 40% ones, recent 20% / 80%:
    # (0.2-0.6)·ln(0.2/0.6) + (0.8-0.4)·ln(0.8/0.4) = 0.7167
    assert abs(psi([0, 0, 0, 1, 1], [0, 1, 1, 1, 1]) - 0.71670) < 1e-4
    assert psi([0, 0, 0, 1, 1], [1, 0, 0, 1, 0]) == 0.0
    rng = np.random.default_rng(3)
    ref = rng.normal(size=4000)
    results = [drift(ref, rng.normal(shift, 1, size=4000)) for shift in (0.0, 0.25, 1.0)]
    assert results[0].psi < 0.02 and results[0].ks_pvalue > 0.01
    assert results[0].psi < results[1].psi < results[2].psi and results[2].psi > 0.5
    assert results[0].ks_statistic < results[1].ks_statistic < results[2].ks_statistic
    with pytest.raises(Exception, match="recent sample has no finite values"):
        drift(ref, [float("nan")])
