package finlake;

import org.apache.spark.sql.api.java.UDF1;

/** Spark SQL function finlake_pan_token(string) -> string: the keyed token of the string's
 * digits (any script's decimal digits, as ASCII). */
public final class PanToken implements UDF1<String, String> {
    @Override
    public String call(String value) {
        if (value == null) return null;
        int[] cps = Cards.codePoints(value);
        return Pan.token(Cards.digits(cps, 0, cps.length));
    }
}
