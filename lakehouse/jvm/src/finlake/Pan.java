package finlake;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.security.InvalidKeyException;
import java.security.NoSuchAlgorithmException;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * Card numbers out of raw Kafka records, in bounded time and stack on any input.
 *
 * <p>The keyed token is HMAC-SHA256(key, digits) as lowercase hex, the same as finlake's Python
 * {@code tokenize_pan_value}. The key never enters a Spark plan: the driver sets it through
 * {@link #setKey}; an executor in another JVM reads it from FINLAKE_PAN_HMAC_KEY.
 *
 * <p>Two passes over the bytes, both linear, no regular expressions:
 * <ol>
 *   <li>a {@code "card_pan"} member (string, number or null; a string cut off by the end of the
 *       payload included) becomes {@code "card_token":"<hex>","card_last4":"<4 digits>"};</li>
 *   <li>any other run of 13-19 digits (ASCII, or JSON escapes of them; single spaces or dashes
 *       between groups allowed) that passes the Luhn check becomes its token, quoted where it
 *       stood outside a JSON string so the JSON stays valid. A 64-character lowercase-hex word
 *       (one of our own tokens) is never read as digits.</li>
 * </ol>
 * UTF-8 multi-byte sequences never contain ASCII bytes, so scanning bytes is safe on any text
 * and leaves every byte that is not part of a card number exactly as it was.
 */
public final class Pan {
    public static final String KEY_ENV = "FINLAKE_PAN_HMAC_KEY";
    private static final byte[] MEMBER = "\"card_pan\"".getBytes(StandardCharsets.US_ASCII);
    private static final char[] HEX = "0123456789abcdef".toCharArray();
    private static final int MIN_DIGITS = 13;
    private static final int MAX_DIGITS = 19;
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
        return scan(replaceMembers(in), true);
    }

    /** Free text (a Kafka key) with every card number replaced by its bare token. */
    public static byte[] tokenizeText(byte[] in) {
        if (in == null) return null;
        return scan(in, false);
    }

    public static boolean luhn(CharSequence digits) {
        int sum = 0;
        boolean dbl = false;
        for (int i = digits.length() - 1; i >= 0; i--) {
            int d = digits.charAt(i) - '0';
            if (dbl) {
                d *= 2;
                if (d > 9) d -= 9;
            }
            sum += d;
            dbl = !dbl;
        }
        return sum % 10 == 0;
    }

    // -- pass 1: the card_pan member ---------------------------------------------------------

    private static int indexOf(byte[] a, byte[] pat, int from) {
        outer:
        for (int i = from; i <= a.length - pat.length; i++) {
            for (int j = 0; j < pat.length; j++) {
                if (a[i + j] != pat[j]) continue outer;
            }
            return i;
        }
        return -1;
    }

    private static boolean ws(byte b) {
        return b == ' ' || b == '\t' || b == '\n' || b == '\r';
    }

    private static byte[] replaceMembers(byte[] in) {
        int at = indexOf(in, MEMBER, 0);
        if (at < 0) return in;
        ByteArrayOutputStream out = new ByteArrayOutputStream(in.length + 64);
        int copied = 0;
        while (at >= 0) {
            int i = at + MEMBER.length;
            while (i < in.length && ws(in[i])) i++;
            if (i >= in.length || in[i] != ':') {
                at = indexOf(in, MEMBER, at + 1);
                continue;
            }
            i++;
            while (i < in.length && ws(in[i])) i++;
            StringBuilder digits = new StringBuilder();
            int end;
            boolean isNull = false;
            if (i < in.length && in[i] == '"') {
                int j = i + 1;
                while (j < in.length && in[j] != '"') {
                    if (in[j] == '\\') j++;
                    else if (in[j] >= '0' && in[j] <= '9') digits.append((char) in[j]);
                    j++;
                }
                end = Math.min(j + 1, in.length);
            } else if (i < in.length && (in[i] == '-' || (in[i] >= '0' && in[i] <= '9'))) {
                int j = i;
                while (j < in.length && ((in[j] >= '0' && in[j] <= '9') || in[j] == '.' || in[j] == 'e' || in[j] == 'E'
                        || in[j] == '+' || in[j] == '-')) {
                    if (in[j] >= '0' && in[j] <= '9') digits.append((char) in[j]);
                    j++;
                }
                end = j;
            } else if (i + 4 <= in.length && in[i] == 'n' && in[i + 1] == 'u' && in[i + 2] == 'l' && in[i + 3] == 'l') {
                isNull = true;
                end = i + 4;
            } else {  // an object, an array or anything else: pass 2 finds digits inside it
                at = indexOf(in, MEMBER, at + 1);
                continue;
            }
            out.write(in, copied, at - copied);
            String member;
            if (isNull || digits.length() == 0) {
                member = "\"card_token\":null,\"card_last4\":null";
            } else {
                String d = digits.toString();
                member = "\"card_token\":\"" + token(d) + "\",\"card_last4\":\"" + d.substring(Math.max(0, d.length() - 4)) + "\"";
            }
            byte[] m = member.getBytes(StandardCharsets.US_ASCII);
            out.write(m, 0, m.length);
            copied = end;
            at = indexOf(in, MEMBER, end);
        }
        out.write(in, copied, in.length - copied);
        return out.toByteArray();
    }

    // -- pass 2: any card number -------------------------------------------------------------

    private static boolean alnum(byte b) {
        return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
    }

    private static boolean lowerHex(byte b) {
        return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f');
    }

    /** Width of the digit at i: 1 for an ASCII digit, 6 for a JSON escape of one, 0 otherwise. */
    private static int digitAt(byte[] a, int i) {
        if (i >= a.length) return 0;
        if (a[i] >= '0' && a[i] <= '9') return 1;
        if (a[i] == '\\' && i + 5 < a.length && a[i + 1] == 'u' && a[i + 2] == '0' && a[i + 3] == '0' && a[i + 4] == '3'
                && a[i + 5] >= '0' && a[i + 5] <= '9') return 6;
        return 0;
    }

    private static char digitValue(byte[] a, int i, int width) {
        return (char) a[i + width - 1];
    }

    /** If i starts a 64-character lowercase-hex word, its end; else -1. */
    private static int ownToken(byte[] a, int i) {
        if (i > 0 && alnum(a[i - 1])) return -1;
        int j = i;
        while (j < a.length && alnum(a[j]) && j - i <= 64) {
            if (!lowerHex(a[j])) return -1;
            j++;
        }
        return j - i == 64 ? j : -1;
    }

    /** Digit groups from i: [start, end) byte spans and their digits, joined by one ' ' or '-'. */
    private static final class Groups {
        int n;
        int[] start = new int[8];
        int[] end = new int[8];
        String[] digits = new String[8];

        void add(int s, int e, String d) {
            if (n == start.length) {
                start = java.util.Arrays.copyOf(start, n * 2);
                end = java.util.Arrays.copyOf(end, n * 2);
                digits = java.util.Arrays.copyOf(digits, n * 2);
            }
            start[n] = s;
            end[n] = e;
            digits[n] = d;
            n++;
        }
    }

    private static Groups groupsFrom(byte[] a, int i) {
        Groups g = new Groups();
        int p = i;
        while (true) {
            int s = p;
            StringBuilder d = new StringBuilder();
            int w;
            while ((w = digitAt(a, p)) > 0) {
                d.append(digitValue(a, p, w));
                p += w;
            }
            g.add(s, p, d.toString());
            if (p + 1 < a.length && (a[p] == ' ' || a[p] == '-') && digitAt(a, p + 1) > 0) {
                p++;
                continue;
            }
            return g;
        }
    }

    /**
     * Whether groups a..b are laid out as card numbers are printed: one run of digits, groups of
     * four with a last group of one to four (4-4-4-4, 4-4-4-3, 4-4-4-4-3), or 4-6-5 / 4-6-4
     * (American Express, Diners). Ids such as "tx-990086-0-000100006" are not card numbers even
     * when their digits pass the Luhn check (one in ten would).
     */
    private static boolean cardLayout(Groups g, int a, int b) {
        if (a == b) return true;
        int n = b - a + 1;
        if (n == 3 && g.digits[a].length() == 4 && g.digits[a + 1].length() == 6
                && (g.digits[b].length() == 5 || g.digits[b].length() == 4)) return true;
        for (int k = a; k < b; k++) {
            if (g.digits[k].length() != 4) return false;
        }
        int last = g.digits[b].length();
        return last >= 1 && last <= 4;
    }

    /** Replacements as (start, end) pairs within one group chain, left to right, longest first. */
    private static int[] windows(Groups g) {
        int[] hits = new int[0];
        int a = 0;
        while (a < g.n) {
            int found = -1;
            int total = 0;
            int lastB = -1;
            for (int b = a; b < g.n; b++) {
                total += g.digits[b].length();
                if (total > MAX_DIGITS) break;
                lastB = b;
            }
            for (int b = lastB; b >= a && found < 0; b--) {
                if (!cardLayout(g, a, b)) continue;
                StringBuilder d = new StringBuilder();
                for (int k = a; k <= b; k++) d.append(g.digits[k]);
                if (d.length() >= MIN_DIGITS && d.length() <= MAX_DIGITS && luhn(d)) found = b;
            }
            if (found >= 0) {
                hits = java.util.Arrays.copyOf(hits, hits.length + 2);
                hits[hits.length - 2] = a;
                hits[hits.length - 1] = found;
                a = found + 1;
            } else {
                a++;
            }
        }
        return hits;
    }

    private static byte[] scan(byte[] a, boolean json) {
        ByteArrayOutputStream out = null;
        int copied = 0;
        boolean inString = false;
        int i = 0;
        while (i < a.length) {
            byte b = a[i];
            if (json && b == '"') {
                inString = !inString;
                i++;
                continue;
            }
            if (json && inString && b == '\\' && digitAt(a, i) == 0) {
                i += 2;  // an escape that is not a digit: skip it whole
                continue;
            }
            if (alnum(b) || digitAt(a, i) > 0) {
                int own = ownToken(a, i);
                if (own >= 0) {
                    i = own;
                    continue;
                }
                if (digitAt(a, i) > 0) {
                    Groups g = groupsFrom(a, i);
                    int[] hits = windows(g);
                    for (int h = 0; h < hits.length; h += 2) {
                        int s = g.start[hits[h]];
                        int e = g.end[hits[h + 1]];
                        StringBuilder d = new StringBuilder();
                        for (int k = hits[h]; k <= hits[h + 1]; k++) d.append(g.digits[k]);
                        if (out == null) out = new ByteArrayOutputStream(a.length + 80);
                        out.write(a, copied, s - copied);
                        String t = token(d.toString());
                        if (json && !inString) t = "\"" + t + "\"";
                        byte[] tb = t.getBytes(StandardCharsets.US_ASCII);
                        out.write(tb, 0, tb.length);
                        copied = e;
                    }
                    i = g.end[g.n - 1];
                    continue;
                }
                // a word: skip its letters and digits together, so "ab12..." is one word
                while (i < a.length && alnum(a[i]) && digitAt(a, i) == 0) i++;
                continue;
            }
            i++;
        }
        if (out == null) return a;
        out.write(a, copied, a.length - copied);
        return out.toByteArray();
    }
}
