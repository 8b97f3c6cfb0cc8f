package finlake;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.Serializable;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.types.DataTypes;

/**
 * An xgboost booster's trees evaluated in the JVM. Built from the booster's JSON model
 * ({@code save_raw("json")}), with xgboost's own arithmetic: features as 32-bit floats, a split
 * goes left when the value is below the condition, a missing value (null or NaN) follows the
 * node's default, and each output's leaf values are summed in 32-bit floats onto its base
 * margin. Outputs: the probability of the positive class for {@code binary:logistic} and
 * {@code reg:logistic}, the margin for {@code reg:squarederror}, one probability per class
 * (softmax over the class margins) for {@code multi:softprob}. Categorical splits are refused
 * when the model is read.
 *
 * <p>As a Spark SQL function ({@link #register}) it takes an {@code array<double>} of the
 * features in the booster's order and returns the single output; {@link Scorer} serves every
 * objective, with the version's calibration and threshold.
 */
public final class Trees implements UDF1<scala.collection.Seq<Object>, Double>, Serializable {
    private final int[][] left, right, feature;
    private final float[][] value;       // split condition, or the leaf value at a leaf
    private final boolean[][] defaultLeft;
    private final int[] treeClass;       // the output each tree adds to
    private final float[] baseMargin;    // per output
    private final boolean logistic, softmax;
    private final int features;
    final String objective;

    Trees(String json) throws Exception {
        this(new ObjectMapper().readTree(json));
    }

    Trees(JsonNode model) {
        JsonNode learner = model.get("learner");
        objective = learner.get("objective").get("name").asText();
        softmax = objective.equals("multi:softprob");
        logistic = objective.equals("binary:logistic") || objective.equals("reg:logistic");
        if (!softmax && !logistic && !objective.equals("reg:squarederror")) {
            throw new IllegalArgumentException("finlake.Trees: objective " + objective + " is not supported");
        }
        JsonNode param = learner.get("learner_model_param");
        int classes = Math.max(1, param.get("num_class").asInt());
        features = param.get("num_feature").asInt();
        String[] base = param.get("base_score").asText().replace("[", "").replace("]", "").split(",");
        baseMargin = new float[classes];
        for (int c = 0; c < classes; c++) {
            float b = Float.parseFloat(base[base.length == 1 ? 0 : c].trim());
            // A logistic model stores its intercept as a probability; softmax stores class margins.
            baseMargin[c] = logistic ? (float) -Math.log(1.0f / b - 1.0f) : b;
        }
        JsonNode gbm = learner.get("gradient_booster").get("model");
        JsonNode trees = gbm.get("trees");
        int n = trees.size();
        treeClass = gbm.has("tree_info") ? ints(gbm.get("tree_info")) : new int[n];
        left = new int[n][]; right = new int[n][]; feature = new int[n][]; value = new float[n][]; defaultLeft = new boolean[n][];
        for (int t = 0; t < n; t++) {
            JsonNode tree = trees.get(t);
            for (JsonNode s : tree.get("split_type")) {
                if (s.asInt() != 0) throw new IllegalArgumentException("finlake.Trees: categorical splits are not supported");
            }
            left[t] = ints(tree.get("left_children"));
            right[t] = ints(tree.get("right_children"));
            feature[t] = ints(tree.get("split_indices"));
            int[] dl = ints(tree.get("default_left"));
            defaultLeft[t] = new boolean[dl.length];
            for (int i = 0; i < dl.length; i++) defaultLeft[t][i] = dl[i] != 0;
            JsonNode cond = tree.get("split_conditions");
            value[t] = new float[cond.size()];
            for (int i = 0; i < cond.size(); i++) value[t][i] = (float) cond.get(i).asDouble();
        }
    }

    private static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = array.get(i).asInt();
        return out;
    }

    /** How many values {@link #predict} gives: the classes of a multi-class model, else 1. */
    public int outputs() {
        return baseMargin.length;
    }

    public int features() {
        return features;
    }

    /** Each output's margin for one row of features (NaN: missing). */
    public float[] margins(float[] x) {
        float[] margin = baseMargin.clone();
        for (int t = 0; t < left.length; t++) {
            int[] l = left[t], r = right[t], f = feature[t];
            float[] v = value[t];
            boolean[] d = defaultLeft[t];
            int node = 0;
            while (l[node] != -1) {
                float fv = x[f[node]];
                node = Float.isNaN(fv) ? (d[node] ? l[node] : r[node]) : (fv < v[node] ? l[node] : r[node]);
            }
            margin[treeClass[t]] += v[node];
        }
        return margin;
    }

    /** The model's outputs for one row: probability (logistic), margin (squared error), or the
     *  class probabilities (softmax, computed as xgboost does: in floats, from the largest margin). */
    public double[] predict(float[] x) {
        float[] m = margins(x);
        double[] out = new double[m.length];
        if (softmax) {
            float max = m[0];
            for (float v : m) max = Math.max(max, v);
            float sum = 0f;
            float[] e = new float[m.length];
            for (int c = 0; c < m.length; c++) {
                e[c] = (float) Math.exp(m[c] - max);
                sum += e[c];
            }
            for (int c = 0; c < m.length; c++) out[c] = e[c] / sum;
        } else {
            out[0] = logistic ? 1.0f / (1.0f + (float) Math.exp(-m[0])) : m[0];
        }
        return out;
    }

    /** The single output of one row (a model with one output). */
    public double score(float[] x) {
        return predict(x)[0];
    }

    /** An {@code array<double>} (elements null or NaN: missing) as the booster's float row. */
    float[] row(scala.collection.Seq<Object> xs) {
        if (xs.length() != features) {
            throw new IllegalArgumentException("finlake.Trees: expected " + features + " features, got " + xs.length());
        }
        float[] x = new float[features];
        for (int i = 0; i < features; i++) {
            Object o = xs.apply(i);
            x[i] = o == null ? Float.NaN : (float) ((Number) o).doubleValue();
        }
        return x;
    }

    /** The booster's float row from the input columns {@code xs}: feature i is {@code xs[pick[i]]}. */
    float[] row(scala.collection.Seq<Object> xs, int[] pick) {
        if (pick.length != features) {
            throw new IllegalArgumentException("finlake.Trees: expected " + features + " features, got " + pick.length);
        }
        float[] x = new float[features];
        for (int i = 0; i < features; i++) {
            Object o = xs.apply(pick[i]);
            x[i] = o == null ? Float.NaN : (float) ((Number) o).doubleValue();
        }
        return x;
    }

    @Override
    public Double call(scala.collection.Seq<Object> xs) {
        return xs == null ? null : score(row(xs));
    }

    /** Register the booster's trees (its JSON model) as the Spark SQL function {@code name}: one
     *  output per row, so a multi-class model is refused here ({@link Scorer} serves it). */
    public static void register(SparkSession spark, String name, String json) throws Exception {
        Trees trees = new Trees(json);
        if (trees.outputs() > 1) {
            throw new IllegalArgumentException("finlake.Trees: objective " + trees.objective
                + " gives one probability per class: serve it with finlake.Scorer");
        }
        spark.udf().register(name, trees, DataTypes.DoubleType);
    }
}
