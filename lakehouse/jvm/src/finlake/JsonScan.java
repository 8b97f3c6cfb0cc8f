package finlake;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * Card numbers out of a JSON payload by its structure, read with Jackson's streaming parser (the
 * parser Spark's own JSON functions use), so a number is never cut into and a text is never left
 * invalid:
 * <ul>
 *   <li>a {@code card_pan} member (its name read with escapes resolved, at any depth) becomes
 *       {@link Pan#panMembers};</li>
 *   <li>a string value or member name is read with its escapes resolved; where {@link Cards#find}
 *       finds card numbers in it, the whole string is written back with each number replaced by
 *       its token, validly escaped;</li>
 *   <li>a number is a card number only when it is an integer whose digits {@link
 *       Cards#isCardNumber read as one}; it becomes its token as a JSON string. A fraction or an
 *       exponent is never read as digits.</li>
 * </ul>
 * Every byte outside a replaced token stays as it was. {@link #tokenize} returns null when the
 * payload is not JSON that Jackson reads as UTF-8 bytes; the caller then scans the bytes.
 */
final class JsonScan {
    private static final JsonFactory FACTORY = JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder()
                    .maxNestingDepth(Integer.MAX_VALUE).maxNumberLength(Integer.MAX_VALUE)
                    .maxStringLength(Integer.MAX_VALUE).maxNameLength(Integer.MAX_VALUE).build())
            // hostile member names: no String.intern, and a flooded symbol table is no error (the
            // byte parser needs canonical names: without them Jackson reads chars, no byte offsets)
            .disable(JsonFactory.Feature.INTERN_FIELD_NAMES)
            .disable(JsonFactory.Feature.FAIL_ON_SYMBOL_HASH_OVERFLOW)
            .build();

    private JsonScan() {}

    /** A token's byte offset disagreed with the bytes: the caller falls back to the byte scan. */
    private static final class Misaligned extends IOException {
        Misaligned() {
            super("offset", null);
        }
    }

    private static int start(JsonParser p, byte[] in, int expect) throws Misaligned {
        long at = p.currentTokenLocation().getByteOffset();
        if (at < 0 || at >= in.length || (expect >= 0 && in[(int) at] != expect)) throw new Misaligned();
        return (int) at;
    }

    /** End (exclusive) of the JSON string that opens at s; Jackson has read it whole already. */
    private static int stringEnd(byte[] in, int s) throws Misaligned {
        int j = s + 1;
        while (j < in.length && in[j] != '"') j += in[j] == '\\' ? 2 : 1;
        if (j >= in.length) throw new Misaligned();
        return j + 1;
    }

    private static int numberEnd(byte[] in, int s, String text) throws Misaligned {
        int e = s + text.length();
        if (e > in.length) throw new Misaligned();
        for (int i = 0; i < text.length(); i++) {
            if (in[s + i] != text.charAt(i)) throw new Misaligned();
        }
        return e;
    }

    /** The payload with its card numbers replaced, or null where it is not JSON read as UTF-8. */
    static byte[] tokenize(byte[] in) {
        Edits ed = new Edits(in);
        try (JsonParser p = FACTORY.createParser(in)) {
            JsonToken t;
            while ((t = p.nextToken()) != null) {
                if (t == JsonToken.FIELD_NAME) {
                    int s = start(p, in, '"');
                    String name = p.currentName();
                    int e = stringEnd(in, s);
                    if (!Pan.MEMBER.equals(name)) {
                        ed.string(s, e, name);
                        continue;
                    }
                    JsonToken v = p.nextToken();
                    if (v == null) throw new Misaligned();
                    int vs = start(p, in, -1);
                    int ve;
                    String members;
                    switch (v) {
                        case VALUE_STRING:
                            ve = stringEnd(in, vs);
                            members = Pan.panMembers(Cards.codePoints(p.getText()), true);
                            break;
                        case VALUE_NUMBER_INT:
                        case VALUE_NUMBER_FLOAT: {
                            String text = p.getText();
                            ve = numberEnd(in, vs, text);
                            members = Pan.panMembers(Cards.codePoints(text), v == JsonToken.VALUE_NUMBER_INT);
                            break;
                        }
                        case VALUE_NULL:
                            ve = vs + 4;
                            members = Pan.panMembers(null, false);
                            break;
                        case VALUE_TRUE:
                        case VALUE_FALSE:
                            ve = vs + p.getText().length();
                            members = Pan.panMembers(new int[0], false);
                            break;
                        default:   // an object or an array: not a card number, and nothing in it is kept
                            p.skipChildren();
                            ve = start(p, in, -1) + 1;
                            members = Pan.panMembers(ByteScan.codePoints(in, vs, ve), false);
                    }
                    ed.replace(s, ve, members);
                } else if (t == JsonToken.VALUE_STRING) {
                    int s = start(p, in, '"');
                    ed.string(s, stringEnd(in, s), p.getText());
                } else if (t == JsonToken.VALUE_NUMBER_INT) {
                    String text = p.getText();
                    int s = start(p, in, -1);
                    int e = numberEnd(in, s, text);
                    String digits = text.startsWith("-") ? text.substring(1) : text;
                    if (Cards.isCardNumber(digits)) {
                        ed.replace(s, e, "\"" + Pan.token(digits) + "\"");
                    }
                }
            }
        } catch (IOException e) {   // not JSON (or not UTF-8 bytes): its message is never shown, it may quote the payload
            return null;
        }
        return ed.result();
    }

    /** The replacements of one payload, in order, over a copy made only when one is needed. */
    private static final class Edits {
        private final byte[] in;
        private ByteArrayOutputStream out;
        private int copied;

        Edits(byte[] in) {
            this.in = in;
        }

        void replace(int s, int e, String text) {
            if (out == null) out = new ByteArrayOutputStream(in.length + 80);
            out.write(in, copied, s - copied);
            byte[] b = text.getBytes(StandardCharsets.UTF_8);
            out.write(b, 0, b.length);
            copied = e;
        }

        /** The JSON string in[s, e) reads as text: rewritten only when it holds a card number. */
        void string(int s, int e, String text) {
            if (!Cards.mayHoldDigit(text)) return;
            int[] cps = Cards.codePoints(text);
            int[] hits = Cards.find(cps, cps.length);
            if (hits.length == 0) return;
            StringBuilder b = new StringBuilder(text.length() + 80).append('"');
            int c = 0;
            for (int h = 0; h < hits.length; h += 2) {
                escape(b, cps, c, hits[h]);
                b.append(Pan.token(Cards.digits(cps, hits[h], hits[h + 1])));
                c = hits[h + 1];
            }
            escape(b, cps, c, cps.length);
            replace(s, e, b.append('"').toString());
        }

        byte[] result() {
            if (out == null) return in;
            out.write(in, copied, in.length - copied);
            return out.toByteArray();
        }
    }

    /** cps[from, to) as JSON string content: quotes, backslashes, controls and unpaired
     * surrogates escaped, everything else as itself. */
    static void escape(StringBuilder b, int[] cps, int from, int to) {
        for (int i = from; i < to; i++) {
            int cp = cps[i];
            switch (cp) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                case '\b': b.append("\\b"); break;
                case '\f': b.append("\\f"); break;
                default:
                    if (cp < 0x20 || (cp >= 0xd800 && cp <= 0xdfff)) b.append(String.format("\\u%04x", cp));
                    else b.appendCodePoint(cp);
            }
        }
    }
}
