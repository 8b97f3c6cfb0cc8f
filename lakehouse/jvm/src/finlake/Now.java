package finlake;

import java.sql.Timestamp;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF0;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;

/**
 * The wall clock when a row is computed, as a Spark SQL function (non-deterministic): a
 * decision plan's {@code decided_at}. Not {@code current_timestamp()}: in a streaming query that
 * becomes the batch's timestamp as a literal, which whole-stage code generation inlines into
 * the generated Java, so every micro-batch generated different code and compiled its stages
 * again (a third of the executor samples of a decision batch were in the compiler).
 */
public final class Now implements UDF0<Timestamp> {
    @Override
    public Timestamp call() {
        return new Timestamp(System.currentTimeMillis());
    }

    public static void register(SparkSession spark, String name) {
        spark.udf().register(name, functions.udf(new Now(), DataTypes.TimestampType).asNondeterministic());
    }
}
