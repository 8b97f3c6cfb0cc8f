package finlake;

import java.nio.charset.StandardCharsets;
import java.security.InvalidKeyException;
import java.security.NoSuchAlgorithmException;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * Card numbers out of raw Kafka records, in bounded time and stack on any input.
 *
 * <p>The keyed token is HMAC-SHA256(key, digits) as lowercase hex, the same as finlake's Python
 * {@code tokenize_pan_value}; the digits are ASCII whatever script they were written in. The key
 * never enters a Spark plan: the driver sets it through {@link #setKey}; an executor in another
 * JVM reads it from FINLAKE_PAN_HMAC_KEY.
 *
 * <p>A payload that is JSON is read by its structure ({@link JsonScan}): the {@code card_pan}
 * member becomes {@code "card_token":"<hex>","card_last4":"<4 digits>"}, and card numbers in any
 * string, member name or integer become their token, with numbers and texts left intact. A
 * payload that is not JSON, and a Kafka key, are scanned as bytes ({@link ByteScan}). Both find
 * card numbers with one rule ({@link Cards}).
 */
public final class Pan {
    public static final String KEY_ENV = "FINLAKE_PAN_HMAC_KEY";
    /** The member a producer puts the clear card number in. */
    public static final String MEMBER = "card_pan";
    /** Added beside card_token when the card_pan value does not look like a card number (12-19
     * digits and separators only); silver quarantines the row as invalid_card_pan. */
    public static final String REJECTED = "card_pan_rejected";
    private static final char[] HEX = "0123456789abcdef".toCharArray();
    private static volatile byte[] key;
    /** Each thread's Mac and the key it was made with: a new key must reach every task thread,
     * not only the one that set it (executor threads outlive jobs and keep their Mac). */
    private static final ThreadLocal<Object[]> MAC = new ThreadLocal<>();

    private Pan() {}

    /** Sets the HMAC key of this JVM (the driver calls it through py4j). */
    public static synchronized void setKey(byte[] k) {
        key = k == null ? null : k.clone();
    }

    public static boolean hasKey() {
        return key != null || System.getenv(KEY_ENV) != null;
    }

    private static Mac mac() {
        byte[] k = key;
        if (k == null) {
            String env = System.getenv(KEY_ENV);
            if (env == null || env.isEmpty()) {
                throw new IllegalStateException("finlake: no PAN tokenization key in this JVM: set " + KEY_ENV);
            }
            k = env.getBytes(StandardCharsets.UTF_8);
            key = k;
        }
        Object[] cached = MAC.get();
        if (cached != null && cached[0] == k) {
            return (Mac) cached[1];
        }
        Mac m;
        try {
            m = Mac.getInstance("HmacSHA256");
            m.init(new SecretKeySpec(k.length == 0 ? new byte[1] : k, "HmacSHA256"));
        } catch (NoSuchAlgorithmException | InvalidKeyException e) {
            throw new IllegalStateException(e);
        }
        MAC.set(new Object[] {k, m});
        return m;
    }

    /** HMAC-SHA256(key, digits) as lowercase hex. */
    public static String token(String digits) {
        byte[] h = mac().doFinal(digits.getBytes(StandardCharsets.US_ASCII));
        char[] out = new char[h.length * 2];
        for (int i = 0; i < h.length; i++) {
            out[2 * i] = HEX[(h[i] >> 4) & 0xf];
            out[2 * i + 1] = HEX[h[i] & 0xf];
        }
        return new String(out);
    }

    /** A JSON payload with the card_pan member and every other card number tokenized. */
    public static byte[] tokenizeJson(byte[] in) {
        if (in == null) return null;
        byte[] out = JsonScan.tokenize(in);
        return out != null ? out : ByteScan.tokenize(in, true);
    }

    /** Free text (a Kafka key) with every card number replaced by its bare token. */
    public static byte[] tokenizeText(byte[] in) {
        if (in == null) return null;
        return ByteScan.tokenize(in, false);
    }

    /**
     * The members that replace a {@code card_pan} member whose value reads as {@code cps} (null
     * for a JSON null): the token of its digits and their last four, plus {@link #REJECTED} when
     * the value cannot be a card number (it may be one only when {@code mayBeCard}, and then only
     * when it holds digits and separators alone, 12 to 19 digits). Nothing of the value is kept
     * in the clear either way.
     */
    static String panMembers(int[] cps, boolean mayBeCard) {
        if (cps == null) return "\"card_token\":null,\"card_last4\":null";
        String d = Cards.digits(cps, 0, cps.length);
        String rejected = mayBeCard && Cards.cardShaped(cps) ? "" : ",\"" + REJECTED + "\":true";
        if (d.isEmpty()) return "\"card_token\":null,\"card_last4\":null" + rejected;
        return "\"card_token\":\"" + token(d) + "\",\"card_last4\":\"" + d.substring(Math.max(0, d.length() - 4)) + "\"" + rejected;
    }
}
