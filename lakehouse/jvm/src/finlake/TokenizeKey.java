package finlake;

import org.apache.spark.sql.api.java.UDF1;

/** Spark SQL function finlake_tokenize_key(binary) -> binary: see {@link Pan#tokenizeText}. */
public final class TokenizeKey implements UDF1<byte[], byte[]> {
    @Override
    public byte[] call(byte[] value) {
        return Pan.tokenizeText(value);
    }
}
