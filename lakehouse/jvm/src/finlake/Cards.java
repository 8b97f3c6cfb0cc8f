package finlake;

import java.util.Arrays;

/**
 * Where card numbers stand in a text, given as Unicode code points: the one detection rule that
 * the structured JSON pass, the byte scan of non-JSON payloads and the Kafka key share.
 *
 * <p>A card number is a chain of digit groups (any Unicode decimal digit: ASCII, full-width,
 * Arabic-Indic, ...) joined by runs of one to {@value #MAX_SEPARATOR_RUN} separators (white
 * space, control and format characters such as NUL or a zero-width space, dashes), laid out as
 * cards are printed (one run, groups of four with a shorter last group, 4-6-5 or 4-6-4, or one
 * digit a group) that {@link #isCardNumber reads as a card number}. Digits that belong to a decimal number (the
 * fraction after a point, the integer part before a point and a digit, a mantissa or an
 * exponent) are never a card number, and neither is one of finlake's own 64-hex tokens.
 */
final class Cards {
    static final int MIN_DIGITS = 13;
    static final int MAX_DIGITS = 19;
    static final int MAX_SEPARATOR_RUN = 3;

    private Cards() {}

    /** The value 0-9 of a Unicode decimal digit, else -1 (a negative code point is no digit). */
    static int digit(int cp) {
        return cp < 0 ? -1 : Character.digit(cp, 10);
    }

    /** Characters that may stand between the digit groups of a printed card number. */
    static boolean separator(int cp) {
        if (cp < 0) return false;
        if (cp == ' ' || cp == '-') return true;
        if (cp < 0x80 && cp >= 0x20 && cp != 0x7f) return false;   // printable ASCII other than those two
        int t = Character.getType(cp);
        return t == Character.CONTROL || t == Character.FORMAT || t == Character.DASH_PUNCTUATION
                || t == Character.SPACE_SEPARATOR || t == Character.LINE_SEPARATOR || t == Character.PARAGRAPH_SEPARATOR
                || cp == 0x2212;   // MINUS SIGN
    }

    private static boolean asciiAlnum(int cp) {
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    }

    private static boolean lowerHex(int cp) {
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'f');
    }

    static boolean luhn(CharSequence digits) {
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

    /**
     * Whether these ASCII digits can be a card number outside {@code card_pan}: 13-19 of them,
     * issued by a payment network (ISO/IEC 7812: a first digit of 2-6; 1 only at 15 digits, UATP;
     * 81 or 82, UnionPay and RuPay), and Luhn-valid. Epoch times (13, 16 or 19 digits from 1) and
     * ids that start with 0, 7, 9 or another 1 are never read as one, whatever their check digit.
     */
    static boolean isCardNumber(CharSequence d) {
        int n = d.length();
        if (n < MIN_DIGITS || n > MAX_DIGITS) return false;
        char first = d.charAt(0);
        boolean issued = (first >= '2' && first <= '6') || (first == '1' && n == 15)
                || (first == '8' && (d.charAt(1) == '1' || d.charAt(1) == '2'));
        return issued && luhn(d);
    }

    /** Whether a string may hold a digit at all (a cheap test before the code-point pass). */
    static boolean mayHoldDigit(CharSequence s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if ((c >= '0' && c <= '9') || (c >= 0x660 && (Character.isDigit(c) || Character.isSurrogate(c)))) return true;
        }
        return false;
    }

    static int[] codePoints(CharSequence s) {
        return s.codePoints().toArray();
    }

    /** The ASCII digits of every Unicode decimal digit in cps[from, to). */
    static String digits(int[] cps, int from, int to) {
        StringBuilder d = new StringBuilder();
        for (int i = from; i < to; i++) {
            int v = digit(cps[i]);
            if (v >= 0) d.append((char) ('0' + v));
        }
        return d.toString();
    }

    /** Whether cps holds only digits and separators, 12 to 19 digits of them: a card_pan value. */
    static boolean cardShaped(int[] cps) {
        int n = 0;
        for (int cp : cps) {
            if (digit(cp) >= 0) n++;
            else if (!separator(cp)) return false;
        }
        return n >= 12 && n <= MAX_DIGITS;
    }

    /** Card numbers in cps[0, n): hits as consecutive (start, end) code-point index pairs. */
    static int[] find(int[] cps, int n) {
        int[] hits = new int[0];
        int i = 0;
        while (i < n) {
            int cp = cps[i];
            if (asciiAlnum(cp) && (i == 0 || !asciiAlnum(cps[i - 1]))) {
                int own = ownToken(cps, n, i);
                if (own >= 0) {
                    i = own;
                    continue;
                }
            }
            if (digit(cp) < 0) {
                i++;
                continue;
            }
            Groups g = groupsFrom(cps, n, i);
            boolean firstIsFraction = numberBefore(cps, g.start[0]);
            boolean lastIsMantissa = numberAfter(cps, n, g.end[g.n - 1]);
            int a = 0;
            while (a < g.n) {
                int found = -1;
                if (!(a == 0 && firstIsFraction)) {
                    int total = 0;
                    int lastB = -1;
                    for (int b = a; b < g.n; b++) {
                        total += g.digits[b].length();
                        if (total > MAX_DIGITS) break;
                        lastB = b;
                    }
                    for (int b = lastB; b >= a && found < 0; b--) {
                        if (b == g.n - 1 && lastIsMantissa) continue;
                        if (!cardLayout(g, a, b)) continue;
                        StringBuilder d = new StringBuilder();
                        for (int k = a; k <= b; k++) d.append(g.digits[k]);
                        if (isCardNumber(d)) found = b;
                    }
                }
                if (found >= 0) {
                    hits = Arrays.copyOf(hits, hits.length + 2);
                    hits[hits.length - 2] = g.start[a];
                    hits[hits.length - 1] = g.end[found];
                    a = found + 1;
                } else {
                    a++;
                }
            }
            i = g.end[g.n - 1];
        }
        return hits;
    }

    /** If cps[i] starts a 64-character lowercase-hex word (one of our tokens), its end; else -1. */
    private static int ownToken(int[] cps, int n, int i) {
        int j = i;
        while (j < n && asciiAlnum(cps[j]) && j - i <= 64) {
            if (!lowerHex(cps[j])) return -1;
            j++;
        }
        return j - i == 64 && (j == n || !asciiAlnum(cps[j])) ? j : -1;
    }

    /** Whether the digits starting at s continue a decimal number: a fraction or an exponent. */
    private static boolean numberBefore(int[] cps, int s) {
        if (s == 0) return false;
        int p = cps[s - 1];
        if (p == '.') {   // "29.7560..." or ".7560...", but not "no.4111..."
            return s < 2 || !Character.isLetter(cps[s - 2]);
        }
        int e = s - 1;
        if ((p == '+' || p == '-') && s >= 2) e = s - 2;
        if (cps[e] == 'e' || cps[e] == 'E') {
            return e > 0 && (digit(cps[e - 1]) >= 0 || cps[e - 1] == '.');
        }
        return false;
    }

    /** Whether the digits ending at e are the integer part or mantissa of a decimal number. */
    private static boolean numberAfter(int[] cps, int n, int e) {
        if (e >= n) return false;
        int c = cps[e];
        if (c == '.') return e + 1 < n && digit(cps[e + 1]) >= 0;
        if (c == 'e' || c == 'E') {
            int f = e + 1;
            if (f < n && (cps[f] == '+' || cps[f] == '-')) f++;
            return f < n && digit(cps[f]) >= 0;
        }
        return false;
    }

    /** Digit groups from i: [start, end) index spans and their digits. */
    private static final class Groups {
        int n;
        int[] start = new int[8];
        int[] end = new int[8];
        String[] digits = new String[8];

        void add(int s, int e, String d) {
            if (n == start.length) {
                start = Arrays.copyOf(start, n * 2);
                end = Arrays.copyOf(end, n * 2);
                digits = Arrays.copyOf(digits, n * 2);
            }
            start[n] = s;
            end[n] = e;
            digits[n] = d;
            n++;
        }
    }

    private static Groups groupsFrom(int[] cps, int n, int i) {
        Groups g = new Groups();
        int p = i;
        while (true) {
            int s = p;
            StringBuilder d = new StringBuilder();
            int v;
            while (p < n && (v = digit(cps[p])) >= 0) {
                d.append((char) ('0' + v));
                p++;
            }
            g.add(s, p, d.toString());
            int q = p;
            while (q < n && q - p < MAX_SEPARATOR_RUN && separator(cps[q])) q++;
            if (q > p && q < n && digit(cps[q]) >= 0) {
                p = q;
                continue;
            }
            return g;
        }
    }

    /**
     * Whether groups a..b are laid out as card numbers are printed: one run of digits, groups of
     * four with a last group of one to four (4-4-4-4, 4-4-4-3, 4-4-4-4-3), 4-6-5 / 4-6-4
     * (American Express, Diners), or one digit a group. Ids such as "tx-990086-0-000100006" are
     * not card numbers even when their digits pass the Luhn check (one in ten would).
     */
    private static boolean cardLayout(Groups g, int a, int b) {
        if (a == b) return true;
        int n = b - a + 1;
        if (n == 3 && g.digits[a].length() == 4 && g.digits[a + 1].length() == 6
                && (g.digits[b].length() == 5 || g.digits[b].length() == 4)) return true;
        boolean singles = true;
        for (int k = a; k <= b; k++) singles &= g.digits[k].length() == 1;
        if (singles) return true;
        for (int k = a; k < b; k++) {
            if (g.digits[k].length() != 4) return false;
        }
        int last = g.digits[b].length();
        return last >= 1 && last <= 4;
    }
}
