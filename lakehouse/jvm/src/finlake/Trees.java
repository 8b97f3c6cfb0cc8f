package finlake;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.types.DataTypes;

/**
 * An xgboost booster's trees evaluated in the JVM, as a Spark SQL function of an
 * {@code array<double>} of the features in the booster's order: the probability of the positive
 * class for {@code binary:logistic} and {@code reg:logistic}, the margin for
 * {@code reg:squarederror}. Built from the booster's JSON model ({@code save_raw("json")}), with
 * xgboost's own arithmetic: features as 32-bit floats, a split goes left when the value is below
 * the condition, a missing value (null or NaN) follows the node's default, and the leaf values
 * are summed in 32-bit floats onto the base margin. Multi-class and categorical splits are
 * refused when the model is read.
 */
public final class Trees implements UDF1<scala.collection.Seq<Object>, Double> {
    private final int[][] left, right, feature;
    private final float[][] value;       // split condition, or the leaf value at a leaf
    private final boolean[][] defaultLeft;
    private final float baseMargin;
    private final boolean logistic;
    private final int features;

    Trees(String json) throws Exception {
        JsonNode learner = new ObjectMapper().readTree(json).get("learner");
        String objective = learner.get("objective").get("name").asText();
        if (!objective.equals("binary:logistic") && !objective.equals("reg:logistic") && !objective.equals("reg:squarederror")) {
            throw new IllegalArgumentException("finlake.Trees: objective " + objective + " is not supported");
        }
        logistic = !objective.equals("reg:squarederror");
        JsonNode param = learner.get("learner_model_param");
        if (param.get("num_class").asInt() > 1) throw new IllegalArgumentException("finlake.Trees: multi-class models are not supported");
        features = param.get("num_feature").asInt();
        float base = Float.parseFloat(param.get("base_score").asText().replace("[", "").replace("]", ""));
        baseMargin = logistic ? (float) -Math.log(1.0f / base - 1.0f) : base;
        JsonNode trees = learner.get("gradient_booster").get("model").get("trees");
        int n = trees.size();
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

    /** The score of one row of features (null or NaN: missing). */
    public double score(float[] x) {
        float margin = baseMargin;
        for (int t = 0; t < left.length; t++) {
            int[] l = left[t], r = right[t], f = feature[t];
            float[] v = value[t];
            boolean[] d = defaultLeft[t];
            int node = 0;
            while (l[node] != -1) {
                float fv = x[f[node]];
                node = Float.isNaN(fv) ? (d[node] ? l[node] : r[node]) : (fv < v[node] ? l[node] : r[node]);
            }
            margin += v[node];
        }
        return logistic ? 1.0f / (1.0f + (float) Math.exp(-margin)) : margin;
    }

    @Override
    public Double call(scala.collection.Seq<Object> xs) {
        if (xs == null) return null;
        if (xs.length() != features) {
            throw new IllegalArgumentException("finlake.Trees: expected " + features + " features, got " + xs.length());
        }
        float[] x = new float[features];
        for (int i = 0; i < features; i++) {
            Object o = xs.apply(i);
            x[i] = o == null ? Float.NaN : (float) ((Number) o).doubleValue();
        }
        return score(x);
    }

    /** Register the booster's trees (its JSON model) as the Spark SQL function {@code name}. */
    public static void register(SparkSession spark, String name, String json) throws Exception {
        spark.udf().register(name, new Trees(json), DataTypes.DoubleType);
    }
}
