package finlake;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.Serializable;
import java.util.Arrays;
import java.util.UUID;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * A served model version scored in the JVM, as ``ml.scoring.predict`` scores it in Python: the
 * booster's trees ({@link Trees}), then the version's calibration map (piecewise linear through
 * its knots, flat outside, mixed with {@code TIE_BREAK} of the raw score and clipped to [0, 1],
 * as {@code ml.calibration.Calibration.apply}), then, for a binary model, its threshold on the
 * score or on the expected loss (score x amount).
 *
 * <p>A Spark SQL function of (features {@code array<double>} in the model's order, amount) that
 * returns {@link #TYPE}: {@code score} (binary: the calibrated probability; regression: the
 * prediction), {@code probabilities} (multi-class, one per class in the model's class order),
 * {@code decision} ({@code alert} / {@code pass}, or the most probable class), {@code threshold}
 * (the score this row had to reach: the threshold, or the expected-loss threshold over the
 * amount), and the model's name and version.
 *
 * <p>The model comes from a spec (JSON: {@code name}, {@code version}, {@code booster} (the
 * booster's JSON model), {@code calibration} ({@code method}, {@code x}, {@code y}),
 * {@code threshold}, {@code threshold_on}, {@code classes}), given inline or as a file that the
 * scorer re-reads when it changes, at most once per {@code refreshMs}: a new champion written
 * there (atomically, by rename) serves from the next rows on, with no new plan.
 */
public final class Scorer implements UDF2<scala.collection.Seq<Object>, Object, Row>, Serializable {
    static final double TIE_BREAK = 1e-6;   // ml.calibration.TIE_BREAK
    public static final StructType TYPE = new StructType()
        .add("score", DataTypes.DoubleType)
        .add("probabilities", DataTypes.createArrayType(DataTypes.DoubleType, false))
        .add("decision", DataTypes.StringType)
        .add("threshold", DataTypes.DoubleType)
        .add("model_name", DataTypes.StringType)
        .add("model_version", DataTypes.StringType);

    /** One model version, ready to score. */
    public static final class Model implements Serializable {
        final String name, version, thresholdOn;
        final Trees trees;
        final double[] knotsX, knotsY;     // empty: no calibration
        final Double threshold;
        final String[] classes;
        final int[] pick;                  // null: the input is the model's features in order

        Model(String spec, String[] columns) throws Exception {
            JsonNode s = new ObjectMapper().readTree(spec);
            name = s.path("name").asText(null);
            version = s.path("version").asText(null);
            JsonNode booster = s.get("booster");
            trees = new Trees(booster.isTextual() ? new ObjectMapper().readTree(booster.asText()) : booster);
            JsonNode cal = s.path("calibration");
            boolean calibrated = cal.isObject() && !"none".equals(cal.path("method").asText("none")) && cal.path("x").size() > 0;
            knotsX = calibrated ? doubles(cal.get("x")) : new double[0];
            knotsY = calibrated ? doubles(cal.get("y")) : new double[0];
            threshold = s.path("threshold").isNumber() ? s.get("threshold").asDouble() : null;
            thresholdOn = s.path("threshold_on").asText("score");
            JsonNode cls = s.path("classes");
            classes = new String[cls.size()];
            for (int i = 0; i < classes.length; i++) classes[i] = cls.get(i).asText();
            if (trees.outputs() > 1 && classes.length != trees.outputs()) {
                throw new IllegalArgumentException("finlake.Scorer: " + name + " v" + version + " has " + trees.outputs()
                    + " class outputs but " + classes.length + " class names");
            }
            if (columns == null) {
                pick = null;
            } else {
                JsonNode names = s.path("features");
                java.util.List<String> cols = Arrays.asList(columns);
                pick = new int[names.size()];
                java.util.List<String> missing = new java.util.ArrayList<>();
                for (int i = 0; i < pick.length; i++) {
                    pick[i] = cols.indexOf(names.get(i).asText());
                    if (pick[i] < 0) missing.add(names.get(i).asText());
                }
                if (!missing.isEmpty()) {
                    throw new IllegalArgumentException("finlake.Scorer: " + name + " v" + version + " needs features " + missing
                        + " the scored rows do not carry");
                }
            }
            if (!thresholdOn.equals("score") && !thresholdOn.equals("expected_loss")) {
                throw new IllegalArgumentException("finlake.Scorer: unknown threshold_on '" + thresholdOn + "'");
            }
        }

        private static double[] doubles(JsonNode array) {
            double[] out = new double[array.size()];
            for (int i = 0; i < out.length; i++) out[i] = array.get(i).asDouble();
            return out;
        }

        /** numpy's interp: flat outside the knots, linear between them. */
        double interp(double p) {
            double[] x = knotsX, y = knotsY;
            int n = x.length;
            if (Double.isNaN(p)) return Double.NaN;
            if (p <= x[0]) return y[0];
            if (p >= x[n - 1]) return y[n - 1];
            int lo = 0, hi = n - 1;
            while (hi - lo > 1) {
                int mid = (lo + hi) >>> 1;
                if (x[mid] <= p) lo = mid; else hi = mid;
            }
            double slope = (y[lo + 1] - y[lo]) / (x[lo + 1] - x[lo]);
            return slope * (p - x[lo]) + y[lo];
        }

        double calibrate(double p) {
            if (knotsX.length == 0) return p;
            double c = (1 - TIE_BREAK) * interp(p) + TIE_BREAK * p;
            return Double.isNaN(c) ? c : Math.min(1.0, Math.max(0.0, c));
        }

        Row score(float[] x, Double amount) {
            double[] out = trees.predict(x);
            if (out.length > 1) {
                int best = 0;
                for (int c = 1; c < out.length; c++) if (out[c] > out[best]) best = c;
                return RowFactory.create(null, Arrays.asList(Arrays.stream(out).boxed().toArray(Double[]::new)), classes[best],
                                         null, name, version);
            }
            double p = calibrate(out[0]);
            if (threshold == null) return RowFactory.create(p, null, null, null, name, version);
            double a = amount == null ? Double.NaN : amount;
            boolean alert = thresholdOn.equals("expected_loss") ? p * a >= threshold : p >= threshold;
            double reach = thresholdOn.equals("expected_loss") ? threshold / Math.max(a, 1e-9) : threshold;
            // A null amount gives no expected loss: the row passes, and has no score to reach
            // (null, as the Python scorer's NaN becomes in Spark).
            return RowFactory.create(p, null, alert ? "alert" : "pass", Double.isNaN(reach) ? null : reach, name, version);
        }
    }

    private final String key;           // the served file's path, or this inline spec's id
    private final String path;          // null: the inline model only
    private final String inline;
    private final long refreshMs;
    private final String[] columns;     // null: the features array is in the model's order

    private Scorer(String inline, String path, long refreshMs, String[] columns) throws Exception {
        this.inline = inline;
        this.path = path;
        this.refreshMs = refreshMs;
        this.columns = columns;
        String cols = columns == null ? "" : "|" + String.join(",", columns);
        this.key = path != null ? "file:" + path + cols : "inline:" + UUID.randomUUID();
        current();   // a spec that does not read fails here, on the driver, in one line
    }

    /** The model to score with now: the inline one, or the file's, re-read when it changed
     *  (a version this plan cannot serve, such as one needing a feature it lacks, is not
     *  taken: the one loaded keeps serving). */
    Model current() throws Exception {
        ServedFile.Loader<Model> load = text -> new Model(text, columns);
        return path == null ? ServedFile.inline(key, inline, load) : ServedFile.current(key, path, refreshMs, load);
    }

    @Override
    public Row call(scala.collection.Seq<Object> xs, Object amount) throws Exception {
        if (xs == null) return null;
        Model m = current();
        return m.score(m.pick == null ? m.trees.row(xs) : m.trees.row(xs, m.pick), amount == null ? null : ((Number) amount).doubleValue());
    }

    /** The model of an inline spec, as the Spark SQL function {@code name}. */
    public static void register(SparkSession spark, String name, String spec) throws Exception {
        spark.udf().register(name, new Scorer(spec, null, 0, null), TYPE);
    }

    /** The model of the spec file at {@code path} (any Hadoop file system), re-read when it
     *  changes (checked at most every {@code refreshMs}), as the Spark SQL function {@code name}. */
    public static void registerServed(SparkSession spark, String name, String path, long refreshMs) throws Exception {
        spark.udf().register(name, new Scorer(null, path, refreshMs, null), TYPE);
    }

    /** As {@link #registerServed(SparkSession, String, String, long)}, with the features array
     *  holding {@code columns} in that order: each served version picks its own features from
     *  them by name (the spec's {@code features}), so a champion trained on other features, or
     *  in another order, serves in the same plan. A version needing a column not there is not
     *  served (the scorer keeps the one it has and the error is raised where it is read). */
    public static void registerServed(SparkSession spark, String name, String path, long refreshMs, String[] columns)
            throws Exception {
        spark.udf().register(name, new Scorer(null, path, refreshMs, columns), TYPE);
    }
}
