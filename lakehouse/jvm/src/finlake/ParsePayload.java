package finlake;

import java.math.BigDecimal;
import java.time.Instant;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.catalyst.util.DateTimeUtils;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.Decimal;
import org.apache.spark.types.variant.Variant;
import org.apache.spark.types.variant.VariantBuilder;
import org.apache.spark.types.variant.VariantUtil;
import org.apache.spark.unsafe.types.UTF8String;

/**
 * Silver's structural parse of one bronze payload in a single pass: the Spark SQL function
 * {@code finlake_parse_<stream>(payload binary)} returns the stream's typed fields, then
 * {@code reasons} (the structural problems, in order) and {@code unknown_fields}.
 *
 * <p>It is the JVM form of {@code lakehouse.silver.parse_bronze}'s expression parse and keeps its
 * semantics by calling Spark's own code for each step: {@code UTF8String.isValid} (is_valid_utf8),
 * {@code VariantBuilder.parseJson} without duplicate keys (try_parse_json), the variant's type
 * (schema_of_variant) and text (try_variant_get as string), {@code Decimal.fromString} with
 * {@code changePrecision} (try_cast to decimal), {@code UTF8String.toInt/toLong}, and
 * {@code DateTimeUtils.stringToTimestamp} in the session's zone (try_to_timestamp). The value
 * checks use the same regular expressions with {@code find}, as {@code rlike} does. A test parses
 * the hostile corpora both ways and requires equal DataFrames.
 *
 * <p>The spec, built in Python from the stream's schema: a first line
 * {@code maxPayloadBytes TAB maxFieldChars TAB zone}, then one line per field:
 * {@code name TAB type TAB required(0/1) TAB timeField(0/1) TAB default} where type is
 * {@code string, timestamp, boolean, int, bigint, double, map} or {@code decimal(p,s)}.
 */
public final class ParsePayload implements UDF1<byte[], Row> {
    private static final Pattern ASCII_INTEGER = Pattern.compile("^-?[0-9]{1,19}$");
    private static final Pattern ASCII_DECIMAL = Pattern.compile("^-?[0-9]{1,20}([.][0-9]{1,20})?$");
    private static final Pattern ASCII_NUMBER = Pattern.compile("^-?[0-9]{1,20}([.][0-9]{1,20})?([eE][-+]?[0-9]{1,3})?$");
    // The instants pandas (datetime64[ns]) can hold: lakehouse.silver.MIN_TIME and MAX_TIME.
    private static final long MIN_MICROS = Instant.parse("1677-09-22T00:00:00Z").getEpochSecond() * 1_000_000L;
    private static final long MAX_MICROS = Instant.parse("2262-04-11T00:00:00Z").getEpochSecond() * 1_000_000L;

    private enum Kind { STRING, TIMESTAMP, BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL, MAP }

    private final int maxPayload, maxField;
    private final String zoneId;
    private final String[] names, defaults, mistyped, missing, oversized, outOfRange;
    private final Kind[] kinds;
    private final int[] precision, scale;
    private final boolean[] required, timeField;
    private final Set<String> known = new HashSet<>();
    private transient ZoneId zone;

    ParsePayload(String spec) {
        String[] lines = spec.split("\n");
        String[] head = lines[0].split("\t", -1);
        maxPayload = Integer.parseInt(head[0]);
        maxField = Integer.parseInt(head[1]);
        zoneId = head[2];
        int n = lines.length - 1;
        names = new String[n]; defaults = new String[n]; kinds = new Kind[n];
        mistyped = new String[n]; missing = new String[n]; oversized = new String[n]; outOfRange = new String[n];
        precision = new int[n]; scale = new int[n]; required = new boolean[n]; timeField = new boolean[n];
        for (int i = 0; i < n; i++) {
            String[] f = lines[i + 1].split("\t", -1);
            names[i] = f[0];
            known.add(f[0]);
            String type = f[1];
            if (type.startsWith("decimal(")) {
                kinds[i] = Kind.DECIMAL;
                String[] ps = type.substring(8, type.length() - 1).split(",");
                precision[i] = Integer.parseInt(ps[0].trim());
                scale[i] = Integer.parseInt(ps[1].trim());
            } else {
                kinds[i] = Kind.valueOf(type.toUpperCase());
            }
            required[i] = f[2].equals("1");
            timeField[i] = f[3].equals("1");
            defaults[i] = f[4].isEmpty() ? null : f[4];
            mistyped[i] = "mistyped_field:" + f[0];
            missing[i] = "missing_field:" + f[0];
            oversized[i] = "oversized_field:" + f[0];
            outOfRange[i] = timeField[i] ? "event_time_out_of_range" : "timestamp_out_of_range:" + f[0];
        }
    }

    /** Register {@code name} in {@code spark} for one stream's spec and row type (as JSON). */
    public static void register(SparkSession spark, String name, String spec, String returnTypeJson) {
        spark.udf().register(name, new ParsePayload(spec), DataType.fromJson(returnTypeJson));
    }

    /** A variant's text as {@code try_variant_get(v, '$', 'string')} gives it. */
    private String text(Variant v) {
        switch (v.getType()) {
            case STRING: return v.getString();
            case LONG: return Long.toString(v.getLong());
            case DECIMAL: return v.getDecimal().toPlainString();
            case DOUBLE: return Double.toString(v.getDouble());
            case BOOLEAN: return v.getBoolean() ? "true" : "false";
            case NULL: return null;
            default: return v.toJson(zone());
        }
    }

    private ZoneId zone() {
        if (zone == null) zone = ZoneId.of(zoneId);
        return zone;
    }

    private static boolean matches(Pattern p, String s) {
        return s != null && p.matcher(s).find();
    }

    private static Double toDouble(String s) {
        try {
            return Double.parseDouble(s);
        } catch (NumberFormatException e) {
            return null;
        }
    }

    @Override
    public Row call(byte[] payload) {
        List<String> reasons = new ArrayList<>(2);
        Variant members = null;
        if (payload == null) {
            reasons.add("invalid_utf8");
        } else {
            UTF8String text = UTF8String.fromBytes(payload);
            if (!text.isValid()) {
                reasons.add("invalid_utf8");
            } else if (payload.length > maxPayload) {
                reasons.add("payload_too_large");
            } else {
                try {
                    Variant v = VariantBuilder.parseJson(text.toString(), false);
                    if (v.getType() == VariantUtil.Type.OBJECT) members = v;
                } catch (Exception | StackOverflowError e) {
                    members = null;
                }
                if (members == null) reasons.add("malformed_json");
            }
        }
        int n = names.length;
        Object[] out = new Object[n + 2];
        for (int i = 0; i < n; i++) {
            Variant m = members == null ? null : members.getFieldByKey(names[i]);
            VariantUtil.Type t = m == null ? null : m.getType();
            boolean present = t != null && t != VariantUtil.Type.NULL;
            Object cast = null;
            boolean ok = false;
            if (present) {
                String s = kinds[i] == Kind.MAP ? null : text(m);   // a map reads each member's text
                switch (kinds[i]) {
                    case STRING:
                        ok = t == VariantUtil.Type.STRING;
                        cast = s;
                        break;
                    case TIMESTAMP:
                        ok = t == VariantUtil.Type.STRING;
                        if (s != null) {
                            scala.Option<Object> micros = DateTimeUtils.stringToTimestamp(UTF8String.fromString(s), zone());
                            cast = micros.isDefined() ? micros.get() : null;
                        }
                        break;
                    case BOOLEAN:
                        ok = t == VariantUtil.Type.BOOLEAN || (t == VariantUtil.Type.STRING && (s.equals("true") || s.equals("false")));
                        cast = ok ? Boolean.valueOf(s.equals("true")) : null;
                        break;
                    case DECIMAL: {
                        ok = (t == VariantUtil.Type.LONG || t == VariantUtil.Type.DECIMAL || t == VariantUtil.Type.STRING)
                                && matches(ASCII_DECIMAL, s);
                        Decimal d = s == null ? null : Decimal.fromString(UTF8String.fromString(s));
                        cast = d != null && d.changePrecision(precision[i], scale[i]) ? d.toJavaBigDecimal() : null;
                        break;
                    }
                    case INT: {
                        ok = (t == VariantUtil.Type.LONG || t == VariantUtil.Type.STRING) && matches(ASCII_INTEGER, s);
                        UTF8String.IntWrapper w = new UTF8String.IntWrapper();
                        cast = s != null && UTF8String.fromString(s).toInt(w) ? (Object) w.value : null;
                        break;
                    }
                    case BIGINT: {
                        ok = (t == VariantUtil.Type.LONG || t == VariantUtil.Type.STRING) && matches(ASCII_INTEGER, s);
                        UTF8String.LongWrapper w = new UTF8String.LongWrapper();
                        cast = s != null && UTF8String.fromString(s).toLong(w) ? (Object) w.value : null;
                        break;
                    }
                    case DOUBLE: {
                        Double d = s == null ? null : toDouble(s);
                        boolean number = t == VariantUtil.Type.LONG || t == VariantUtil.Type.DECIMAL
                                || t == VariantUtil.Type.DOUBLE || t == VariantUtil.Type.FLOAT;
                        ok = (number || (t == VariantUtil.Type.STRING && matches(ASCII_NUMBER, s)))
                                && d != null && !d.isNaN() && !d.isInfinite();
                        cast = d;
                        break;
                    }
                    case MAP: {
                        ok = t == VariantUtil.Type.OBJECT;
                        if (ok) {
                            Map<String, String> map = new LinkedHashMap<>();
                            for (int j = 0; j < m.objectSize(); j++) {
                                Variant.ObjectField f = m.getFieldAtIndex(j);
                                map.put(f.key, text(f.value));
                            }
                            cast = map;
                        }
                        break;
                    }
                    default:
                        throw new IllegalStateException("no parse rule for " + kinds[i]);
                }
            }
            boolean bad = present && !(ok && cast != null);
            if (bad) reasons.add(mistyped[i]);
            if (required[i] && members != null && !present) reasons.add(missing[i]);
            boolean keep = present && !bad;
            if (keep && kinds[i] == Kind.STRING) {
                String s = (String) cast;
                if (s.codePointCount(0, s.length()) > maxField) {
                    reasons.add(oversized[i]);
                    keep = false;
                }
            }
            if (keep && kinds[i] == Kind.TIMESTAMP) {
                long us = (Long) cast;
                if (us < MIN_MICROS || us >= MAX_MICROS) {
                    reasons.add(outOfRange[i]);
                    keep = false;
                }
                cast = Instant.ofEpochSecond(Math.floorDiv(us, 1_000_000L), Math.floorMod(us, 1_000_000L) * 1000L);
            }
            Object value = keep ? cast : null;
            if (defaults[i] != null && members != null && !present) value = defaults[i];
            out[i] = value;
        }
        out[n] = reasons.toArray(new String[0]);
        List<String> unknown = new ArrayList<>(0);
        if (members != null) {
            for (int j = 0; j < members.objectSize(); j++) {
                String key = members.getFieldAtIndex(j).key;
                if (!known.contains(key)) unknown.add(key);
            }
        }
        out[n + 1] = unknown.toArray(new String[0]);
        return RowFactory.create(out);
    }
}
