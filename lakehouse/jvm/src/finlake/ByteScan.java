package finlake;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The byte scan for what is not one JSON document (a Kafka key, a payload no JSON parser reads):
 * linear, no regular expressions, bounded stack on any input.
 *
 * <p>The bytes are read as units: a JSON escape ({@code \u0034}, a surrogate pair of them,
 * {@code \t}, ...), a well-formed UTF-8 sequence, or a single byte that is neither. Card numbers
 * are found over the units' code points by {@link Cards#find}, so an escaped separator or a
 * full-width digit hides nothing, and each hit's bytes are replaced by its token (quoted where it
 * stood outside a JSON string, in a payload). Every other byte stays exactly as it was.
 */
final class ByteScan {
    private static final byte[] MEMBER = ("\"" + Pan.MEMBER + "\"").getBytes(StandardCharsets.US_ASCII);

    private ByteScan() {}

    /** Units of a[from, to): code point (-1 for a byte that starts no character), byte offset,
     * and whether the unit is a plain byte (so a quote there opens or closes a string). */
    static final class Units {
        int n;
        int[] cp;
        int[] at;
        boolean[] plain;
    }

    private static int hex(byte b) {
        if (b >= '0' && b <= '9') return b - '0';
        if (b >= 'a' && b <= 'f') return b - 'a' + 10;
        if (b >= 'A' && b <= 'F') return b - 'A' + 10;
        return -1;
    }

    /** The value of a {@code \\uXXXX} escape at i, or -1. */
    private static int escapeAt(byte[] a, int i, int to) {
        if (i + 6 > to) return -1;
        if (a[i] != '\\' || a[i + 1] != 'u') return -1;
        int v = 0;
        for (int k = 2; k < 6; k++) {
            int h = hex(a[i + k]);
            if (h < 0) return -1;
            v = v * 16 + h;
        }
        return v;
    }

    private static int simpleEscape(byte c) {
        switch (c) {
            case 'n': return '\n';
            case 't': return '\t';
            case 'r': return '\r';
            case 'b': return '\b';
            case 'f': return '\f';
            case '"': return '"';
            case '\\': return '\\';
            case '/': return '/';
            default: return -1;
        }
    }

    /** Length of the well-formed UTF-8 sequence at i (its code point in out[0]), else 0. */
    private static int utf8(byte[] a, int i, int to, int[] out) {
        int b = a[i] & 0xff;
        int len;
        int cp;
        if (b >= 0xc2 && b <= 0xdf) {
            len = 2;
            cp = b & 0x1f;
        } else if (b >= 0xe0 && b <= 0xef) {
            len = 3;
            cp = b & 0x0f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            len = 4;
            cp = b & 0x07;
        } else {
            return 0;
        }
        if (i + len > to) return 0;
        for (int k = 1; k < len; k++) {
            int c = a[i + k] & 0xff;
            if ((c & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (c & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
        out[0] = cp;
        return len;
    }

    static Units decode(byte[] a, int from, int to) {
        Units u = new Units();
        int cap = to - from;
        u.cp = new int[cap];
        u.at = new int[cap + 1];
        u.plain = new boolean[cap];
        int[] one = new int[1];
        int i = from;
        while (i < to) {
            int k = u.n++;
            u.at[k] = i;
            int b = a[i] & 0xff;
            if (b == '\\' && i + 1 < to) {
                int v = escapeAt(a, i, to);
                if (v >= 0) {
                    int w = Character.isHighSurrogate((char) v) ? escapeAt(a, i + 6, to) : -1;
                    if (w >= 0 && Character.isLowSurrogate((char) w)) {
                        u.cp[k] = Character.toCodePoint((char) v, (char) w);
                        i += 12;
                    } else {
                        u.cp[k] = v;
                        i += 6;
                    }
                    continue;
                }
                int s = simpleEscape(a[i + 1]);
                if (s >= 0) {
                    u.cp[k] = s;
                    i += 2;
                    continue;
                }
            }
            if (b < 0x80) {
                u.cp[k] = b;
                u.plain[k] = true;
                i++;
                continue;
            }
            int len = utf8(a, i, to, one);
            if (len > 0) {
                u.cp[k] = one[0];
                i += len;
            } else {
                u.cp[k] = -1;
                i++;
            }
        }
        u.at[u.n] = to;
        return u;
    }

    /** The code points of a[from, to) with escapes resolved (see {@link #decode}). */
    static int[] codePoints(byte[] a, int from, int to) {
        Units u = decode(a, from, to);
        return Arrays.copyOf(u.cp, u.n);
    }

    /** A payload no JSON parser reads (json) or a Kafka key (not json), card numbers replaced. */
    static byte[] tokenize(byte[] in, boolean json) {
        byte[] a = json ? replaceMembers(in) : in;
        Units u = decode(a, 0, a.length);
        int[] hits = Cards.find(u.cp, u.n);
        if (hits.length == 0) return a;
        boolean[] inString = new boolean[u.n + 1];
        if (json) {
            boolean open = false;
            for (int k = 0; k < u.n; k++) {
                inString[k] = open;
                if (u.plain[k] && u.cp[k] == '"') open = !open;
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(a.length + 80);
        int copied = 0;
        for (int h = 0; h < hits.length; h += 2) {
            int s = u.at[hits[h]];
            int e = u.at[hits[h + 1]];
            out.write(a, copied, s - copied);
            String t = Pan.token(Cards.digits(u.cp, hits[h], hits[h + 1]));
            if (json && !inString[hits[h]]) t = "\"" + t + "\"";
            byte[] tb = t.getBytes(StandardCharsets.US_ASCII);
            out.write(tb, 0, tb.length);
            copied = e;
        }
        out.write(a, copied, a.length - copied);
        return out.toByteArray();
    }

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

    /** Each {@code "card_pan"} member whose value is a string (cut off or not), a number or null
     * becomes {@link Pan#panMembers}; other values are left to the scan. */
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
            int end;
            String member;
            if (i < in.length && in[i] == '"') {
                int j = i + 1;
                while (j < in.length && in[j] != '"') j += in[j] == '\\' ? 2 : 1;
                j = Math.min(j, in.length);
                member = Pan.panMembers(codePoints(in, i + 1, j), true);
                end = Math.min(j + 1, in.length);
            } else if (i < in.length && (in[i] == '-' || (in[i] >= '0' && in[i] <= '9'))) {
                int j = i;
                boolean integer = true;
                while (j < in.length && ((in[j] >= '0' && in[j] <= '9') || in[j] == '.' || in[j] == 'e' || in[j] == 'E'
                        || in[j] == '+' || in[j] == '-')) {
                    integer &= (in[j] >= '0' && in[j] <= '9') || (j == i && in[j] == '-');
                    j++;
                }
                member = Pan.panMembers(codePoints(in, i, j), integer);
                end = j;
            } else if (i + 4 <= in.length && in[i] == 'n' && in[i + 1] == 'u' && in[i + 2] == 'l' && in[i + 3] == 'l') {
                member = Pan.panMembers(null, false);
                end = i + 4;
            } else {  // an object, an array or anything else: the scan finds digits inside it
                at = indexOf(in, MEMBER, at + 1);
                continue;
            }
            out.write(in, copied, at - copied);
            byte[] m = member.getBytes(StandardCharsets.UTF_8);
            out.write(m, 0, m.length);
            copied = end;
            at = indexOf(in, MEMBER, end);
        }
        out.write(in, copied, in.length - copied);
        return out.toByteArray();
    }
}
