"""The statistical report: PCA and VIF on a bounded sample of each use case's features, the
champion against its baseline (paired t-test and Wilcoxon over the search folds, DeLong on the
fraud test period), ANOVA and Tukey HSD over the hyperparameter search, and STL, ACF/PACF,
Ljung-Box and ADF per market symbol; written as report.html, report.json and table4.md and
logged to each champion's training run in MLflow."""
from __future__ import annotations

import time
from pathlib import Path

import mlflow
import numpy as np

import stats
from ml import registry
from ml.datasets import USE_CASES
from ml.evidence import best_folds, champion_evidence, feature_sample, market_bars

TITLES = {"fraud": "Fraud detection", "trading": "Trading signal", "loan_pd": "Loan probability of default"}


def _safe(fn, *args, **kwargs):
    """A statistic, or its one-line reason for not being computable (recorded, never a crash)."""
    try:
        return fn(*args, **kwargs), None
    except stats.StatsInputError as exc:
        return None, str(exc)


def features_section(sample, cfg) -> tuple[dict, dict]:
    """PCA and VIF on the median-imputed sample (nulls are structural: no previous transaction,
    no location for an online purchase)."""
    nulls = {c: round(float(sample[c].isna().mean()), 4) for c in sample.columns}
    frame, constant = stats.drop_constant(sample.astype(float))
    frame = frame.fillna(frame.median())
    pca, pca_err = _safe(stats.pca_summary, frame, float(cfg["stats.variance_target"]))
    vif, vif_err = _safe(stats.vif_table, frame, float(cfg["stats.vif_threshold"]))
    out = {"rows": len(sample), "null_share": nulls, "constant_dropped": constant,
           "pca": pca.to_dict() if pca else {"error": pca_err}, "vif": vif.to_dict() if vif else {"error": vif_err}}
    section = {"heading": "Features: PCA and VIF",
               "text": f"{len(sample):,} rows sampled; constant columns left out: {', '.join(constant) or 'none'}; "
                       "nulls imputed with the median.",
               "tables": [], "figures": []}
    if pca:
        section["text"] += (f"\n\nPCA: {pca.n_components} components reach {pca.cumulative_at_k:.1%} of the variance "
                            f"(target {pca.variance_target:.0%}).")
        section["figures"].append(stats.scree_plot(pca))
        section["tables"].append(pca.loadings.round(3).reset_index().rename(columns={"index": "feature"}))
    else:
        section["text"] += f"\n\nPCA not computed: {pca_err}"
    if vif:
        section["text"] += (f"\n\nVIF: median {vif.median:.2f}; over 5: {', '.join(vif.over_5) or 'none'}; over 10: "
                            f"{', '.join(vif.over_10) or 'none'}; suggested reduced set drops {', '.join(vif.dropped_for_reduction) or 'nothing'}.")
        section["tables"].append([{"feature": k, "vif": v} for k, v in sorted(vif.to_dict()["vif"].items(), key=lambda kv: -(kv[1] or 1e18))])
    else:
        section["text"] += f"\n\nVIF not computed: {vif_err}"
    return out, section


def model_section(use_case, evidence) -> tuple[dict, dict]:
    """Champion against baseline over the folds; DeLong on the test period (binary); ANOVA."""
    if evidence is None:
        msg = "no champion registered yet: run jobs/train.py first"
        return {"error": msg}, {"heading": "Model against baseline, and the search", "text": msg}
    paired_in = best_folds(evidence)
    paired, paired_err = _safe(stats.paired_comparison, paired_in["metric_model"], paired_in["metric_baseline"], evidence.fold_metric)
    one, one_err = _safe(stats.one_way_anova, evidence.folds)
    two, two_err = _safe(stats.two_way_anova, evidence.folds)
    tukey, tukey_err = _safe(stats.tukey_hsd, evidence.folds)
    delong, delong_err = None, None
    if use_case.kind in ("binary", "pd"):
        t = evidence.test_scores
        delong, delong_err = _safe(stats.delong_test, t["label"], t["xgboost"], t["baseline"])
    out = {"champion": {"name": evidence.name, "version": evidence.version, "run_id": evidence.run_id, "best": evidence.best},
           "fold_metric": evidence.fold_metric,
           "paired": paired.to_dict() if paired else {"error": paired_err},
           "delong": delong.to_dict() if delong else ({"error": delong_err} if delong_err else None),
           "anova_one_way": one.to_dict() if one else {"error": one_err},
           "anova_two_way": two.to_dict() if two else {"error": two_err},
           "tukey": tukey.to_dict() if tukey else {"error": tukey_err}}
    lines = [f"Champion {evidence.name} v{evidence.version}, setting {evidence.best}; fold metric {evidence.fold_metric}."]
    if paired:
        lines.append(f"Paired over {paired.n_folds} folds: mean {paired.mean_model:.4f} against {paired.mean_baseline:.4f}; "
                     f"t = {paired.t if paired.t is None else round(paired.t, 3)}, p = {stats.format_p(paired.p)}; "
                     f"Wilcoxon p = {stats.format_p(paired.wilcoxon_p)}; Cohen's d_z = "
                     f"{paired.cohens_dz if paired.cohens_dz is None else round(paired.cohens_dz, 2)}." + (f" ({paired.note})" if paired.note else ""))
    else:
        lines.append(f"Paired test not computed: {paired_err}")
    if delong:
        lines.append(f"DeLong on the test period: AUC {delong.auc_a:.4f} against {delong.auc_b:.4f}, z = "
                     f"{delong.z if delong.z is None else round(delong.z, 2)}, p = {stats.format_p(delong.p)}.")
    elif delong_err:
        lines.append(f"DeLong not computed: {delong_err}")
    lines.append(f"One-way ANOVA over the settings: F = {one.F:.2f}, p = {stats.format_p(one.p)} ({one.groups} settings)."
                 if one else f"One-way ANOVA not computed: {one_err}")
    section = {"heading": "Model against baseline, and the search", "text": "\n\n".join(lines), "tables": [], "figures": []}
    section["tables"].append(paired_in.rename(columns={"metric_model": "champion", "metric_baseline": "baseline"}))
    if two:
        section["tables"].append(two.table)
    if tukey:
        section["tables"].append(tukey.pairs)
    return out, section


def market_section(spark, cfg) -> tuple[dict, dict]:
    """Per symbol: STL, ACF/PACF, Ljung-Box and ADF of bar returns, and ADF of the log price."""
    period, lags = int(cfg["stats.stl_period"]), int(cfg["stats.lags"])
    bars = market_bars(spark, cfg, int(cfg["stats.bar_seconds"]), int(cfg["stats.max_symbols"]))
    out, rows, figures = {}, [], []
    for symbol, frame in bars.items():
        ret, ret_err = _safe(stats.diagnose_series, frame["log_return"].reset_index(drop=True), period, lags)
        price, price_err = _safe(stats.diagnose_series, np.log(frame["mid"].astype(float)).reset_index(drop=True), period, lags)
        out[symbol] = {"bars": len(frame), "returns": ret.to_dict() if ret else {"error": ret_err},
                       "log_price": price.to_dict() if price else {"error": price_err}}
        if ret:
            rows.append({"symbol": symbol, "bars": len(frame), "ljung_box_p": stats.format_p(ret.ljung_box_p),
                         "adf_p_returns": stats.format_p(ret.adf_p), "adf_p_log_price": stats.format_p(price.adf_p) if price else "–",
                         "trend_strength": ret.trend_strength, "seasonal_strength": ret.seasonal_strength})
            if len(figures) < 4:
                figures += [stats.acf_pacf_plot(ret), stats.stl_plot(frame["log_return"].reset_index(drop=True), period)]
        else:
            rows.append({"symbol": symbol, "bars": len(frame), "ljung_box_p": ret_err})
    text = (f"Ticks resampled to {cfg['stats.bar_seconds']} s bars (last mid); STL period {period} bars; Ljung-Box and "
            f"ACF/PACF at {lags} lags. A low Ljung-Box p says returns are autocorrelated (the order-flow signal); ADF "
            "should reject a unit root for returns and not for prices.")
    return out, {"heading": "Market time series", "text": text, "tables": [rows], "figures": figures}


def table4_row(name: str, features: dict, model: dict) -> dict:
    """One use case's row of Table 4: PCA components and variance, median VIF, paired p, ANOVA F."""
    pca, vif = features.get("pca", {}), features.get("vif", {})
    return {"use_case": name, "n_components": pca.get("n_components"),
            "cumulative_pct": None if pca.get("cumulative_at_k") is None else 100 * pca["cumulative_at_k"],
            "median_vif": vif.get("median"), "paired_p": (model.get("paired") or {}).get("p"),
            "anova_f": (model.get("anova_one_way") or {}).get("F")}


def build_report(spark, cfg, names: list[str], progress=None) -> tuple[dict, list[dict]]:
    """The report of the use cases ``names`` (features, model and, for trading, market per use
    case; Table 4) and the sections of its HTML page, the Table 4 summary first. ``progress(name)``
    is called as each use case starts."""
    report, sections, table4 = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "use_cases": {}}, [], []
    for name in names:
        use_case = USE_CASES[name]
        if progress is not None:
            progress(name)
        sample, total = feature_sample(spark, cfg, use_case, int(cfg["stats.sample_rows"]))
        features, f_section = features_section(sample, cfg)
        features["table_rows"] = total
        evidence = champion_evidence(cfg, use_case)
        model, m_section = model_section(use_case, evidence)
        entry = {"features": features, "model": model}
        secs = [dict(f_section, heading=f"{TITLES[name]}: {f_section['heading']}"),
                dict(m_section, heading=f"{TITLES[name]}: {m_section['heading']}")]
        if name == "trading":
            entry["market"], t_section = market_section(spark, cfg)
            secs.append(t_section)
        report["use_cases"][name] = entry
        sections += secs
        table4.append(table4_row(name, features, model))
        entry["evidence_run_id"] = evidence.run_id if evidence else None
    report["table4"] = table4
    intro = {"heading": "Summary (layout of the reference study's Table 4: study / ours)", "text": None,
             "tables": [[{"use case": r["use_case"], "components": r["n_components"], "cumulative %": r["cumulative_pct"],
                          "median VIF": r["median_vif"], "paired p": stats.format_p(r["paired_p"]), "ANOVA F": r["anova_f"]}
                         for r in table4]]}
    return report, [intro, *sections]


def write_report(spark, cfg, names: list[str], out_dir: Path, progress=None) -> dict:
    """Build the report of ``names``, write report.html, table4.md and report.json under
    ``out_dir`` and log them to each champion's training run. Returns Table 4 as ``markdown``
    and as JSON-safe rows (``table4``), and the runs logged to (``logged_to_runs``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report, sections = build_report(spark, cfg, names, progress)
    md = stats.table4_markdown(report["table4"])
    html = stats.render_html("finlake statistical diagnostics", sections)
    (out_dir / "report.html").write_text(html)
    (out_dir / "table4.md").write_text(md + "\n")
    stats.write_json(report, out_dir / "report.json")
    logged = log_to_runs(cfg, report, out_dir)
    return {"markdown": md, "table4": stats.json_safe(report["table4"]), "logged_to_runs": logged}


def log_to_runs(cfg, report: dict, out_dir: Path) -> list[str]:
    """Attach the report to each champion's training run (artifacts under stats/, headline metrics)."""
    registry.connect(cfg)
    done = []
    for name, entry in report["use_cases"].items():
        run_id = entry.get("evidence_run_id")
        if not run_id:
            continue
        row = next(r for r in report["table4"] if r["use_case"] == name)
        with mlflow.start_run(run_id=run_id):
            for f in ("report.html", "report.json", "table4.md"):
                mlflow.log_artifact(str(out_dir / f), artifact_path="stats")
            mlflow.log_metrics({f"stats_{k}": float(v) for k, v in row.items() if isinstance(v, (int, float)) and v is not None})
        done.append(run_id)
    return done
