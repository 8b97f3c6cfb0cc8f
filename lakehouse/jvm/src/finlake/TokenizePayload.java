package finlake;

import org.apache.spark.sql.api.java.UDF1;

/** Spark SQL function finlake_tokenize_payload(binary) -> binary: see {@link Pan#tokenizeJson}. */
public final class TokenizePayload implements UDF1<byte[], byte[]> {
    @Override
    public byte[] call(byte[] value) {
        return Pan.tokenizeJson(value);
    }
}
