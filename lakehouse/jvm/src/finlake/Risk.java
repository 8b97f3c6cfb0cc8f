package finlake;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.Serializable;
import java.util.Arrays;
import java.util.HashMap;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF3;
import org.apache.spark.sql.types.DataTypes;

/**
 * Merchant and terminal risk as of an hour, looked up in the JVM from a served snapshot file
 * (written by {@code lakehouse.risk.ServedRisk} from gold's own {@code entity_risk}), so that a
 * decision plan joins no table per micro-batch: a Delta stream-static join re-read the table and
 * broadcast it in every batch (0.7-0.9 s a batch, measured), this is a hash lookup per row.
 *
 * <p>The file is JSON: {@code features} (the names, in order) and {@code rows}, each
 * {@code [entity column, key, as-of epoch ms, value...]} (null: no value). The Spark SQL
 * function {@code name(entity, key, asof)} returns the row's values as {@code array<double>},
 * or null where the snapshot has no such (entity, key, hour). The file is re-read when it
 * changes ({@link ServedFile}).
 */
public final class Risk implements UDF3<String, String, Long, Double[]>, Serializable {
    static final class Snapshot {
        final HashMap<String, Double[]> rows = new HashMap<>();

        Snapshot(String text, String[] features) throws Exception {
            JsonNode s = new ObjectMapper().readTree(text);
            JsonNode names = s.path("features");
            String[] got = new String[names.size()];
            for (int i = 0; i < got.length; i++) got[i] = names.get(i).asText();
            if (!Arrays.equals(got, features)) {
                throw new IllegalArgumentException("finlake.Risk: the snapshot holds " + Arrays.toString(got) + ", not "
                    + Arrays.toString(features));
            }
            for (JsonNode r : s.path("rows")) {
                Double[] v = new Double[features.length];
                for (int i = 0; i < v.length; i++) {
                    JsonNode x = r.get(3 + i);
                    v[i] = x == null || x.isNull() ? null : x.asDouble();
                }
                rows.put(key(r.get(0).asText(), r.get(1).asText(), r.get(2).asLong()), v);
            }
        }
    }

    static String key(String entity, String key, long asof) {
        return entity + '\u0000' + key + '\u0000' + asof;
    }

    private final String path, cacheKey;
    private final String[] features;
    private final long refreshMs;

    private Risk(String path, String[] features, long refreshMs) throws Exception {
        this.path = path;
        this.features = features;
        this.refreshMs = refreshMs;
        this.cacheKey = "risk:" + path + "|" + String.join(",", features);
        current();   // a snapshot that does not read fails here, on the driver
    }

    Snapshot current() throws Exception {
        return ServedFile.current(cacheKey, path, refreshMs, text -> new Snapshot(text, features));
    }

    @Override
    public Double[] call(String entity, String key, Long asof) throws Exception {
        if (entity == null || key == null || asof == null) return null;
        return current().rows.get(key(entity, key, asof));
    }

    /** The snapshot file at {@code path} as the Spark SQL function {@code name}. */
    public static void register(SparkSession spark, String name, String path, String[] features, long refreshMs)
            throws Exception {
        spark.udf().register(name, new Risk(path, features, refreshMs), DataTypes.createArrayType(DataTypes.DoubleType, true));
    }
}
