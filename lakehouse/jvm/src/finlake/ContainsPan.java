package finlake;

import java.nio.charset.StandardCharsets;
import org.apache.spark.sql.api.java.UDF1;

/** Spark SQL function finlake_contains_pan(string) -> boolean: a card number is in the text. */
public final class ContainsPan implements UDF1<String, Boolean> {
    @Override
    public Boolean call(String value) {
        return value != null && Pan.containsPan(value.getBytes(StandardCharsets.UTF_8));
    }
}
