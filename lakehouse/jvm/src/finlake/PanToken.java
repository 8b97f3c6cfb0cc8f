package finlake;

import org.apache.spark.sql.api.java.UDF1;

/** Spark SQL function finlake_pan_token(string) -> string: the keyed token of the string's digits. */
public final class PanToken implements UDF1<String, String> {
    @Override
    public String call(String value) {
        if (value == null) return null;
        StringBuilder d = new StringBuilder();
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (c >= '0' && c <= '9') d.append(c);
        }
        return Pan.token(d.toString());
    }
}
