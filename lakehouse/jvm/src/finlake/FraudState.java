package finlake;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.KryoSerializable;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The fraud decision path's per-customer state: each card's transactions over the longest
 * lookback and the customer's user events over the last day, kept in Spark's state store
 * ({@code transformWithState} through {@link KeyedState}, RocksDB), exactly once through the query's
 * checkpoint, starting from the customers' history in silver when the checkpoint is new.
 *
 * <p>For every new transaction it emits the transaction's columns and the features
 * {@code lakehouse.gold.card_features} computes, over the events that have arrived up to the end
 * of the batch, with the same window bounds: range windows include every event with an event
 * time in {@code [t - span, t]} (ties included, as Spark's RANGE frames do), "previous" means
 * the latest event before (event time, event id), and the card's history for home and amount
 * statistics is {@code [t - 30 d, t - 1 ms]}. So a decision equals gold computed over the events
 * that had arrived by its batch; an event arriving after a later one was decided is counted in
 * the decisions that come after it, but not in the one already made (gold counts it in both).
 *
 * <p>State is keyed by customer; a card's history lives under the customer of its transactions.
 * A repeated event id (a duplicate copy) is dropped: each event counts once and each
 * transaction is decided once. History older than the lookback plus the allowed lateness
 * behind the key's newest event is pruned, and a key idle for that long is removed (TTL).
 */
public final class FraudState {
    private FraudState() {}

    static final long M10 = 600_000L, H1 = 3_600_000L, H24 = 86_400_000L;
    /** The state's key column. */
    public static final String KEY = "customer_id";
    public static final String[] FEATURES = {
        "tx_count_10m", "tx_count_1h", "tx_count_24h", "amount_sum_10m", "amount_sum_1h", "amount_sum_24h",
        "amount_mean_10m", "amount_mean_1h", "amount_mean_24h", "amount_max_10m", "amount_max_1h", "amount_max_24h",
        "distinct_merchants_24h", "distinct_countries_24h", "seconds_since_prev_tx", "km_from_prev_tx", "km_from_home",
        "amount_vs_card_mean", "amount_zscore", "risky_user_events_1h", "risky_user_events_24h", "device_changes_24h",
        "distinct_ip_countries_24h", "is_ecommerce", "is_atm",
        "customer_tx_count_1d", "customer_tx_count_7d", "customer_tx_count_30d", "customer_amount_mean_1d",
        "customer_amount_mean_7d", "customer_amount_mean_30d", "amount_vs_customer_mean_30d",
        "hour_of_day", "is_night", "is_weekend", "device_tx_count_30d", "seconds_since_device_first_seen",
    };
    /** Input columns the state reads (the rest of a transaction row passes through). */
    public static final String[] INPUT = {
        "_kind", "_ts", "_kts", "event_id", "customer_id", "card_token", "merchant_id", "merchant_country", "_amt",
        "channel", "lat", "lon", "event_type", "ip_country", "kafka_partition", "kafka_offset", "device_id",
    };
    static final String[] RISKY = {"password_reset", "device_change", "payee_add"};

    /** One transaction in a card's history. */
    public static final class Tx implements Serializable {
        public long ts;
        public String id, merchant, country, device;   // device null when the row had none
        public double amt, lat, lon;   // lat/lon NaN when null
        public boolean latNull, lonNull, present;
        public Tx() {}
    }

    /** One user event in a customer's last day. */
    public static final class Ue implements Serializable {
        public long ts;
        public String id, country;
        public boolean risky, device;
        public Ue() {}
    }

    /**
     * A customer's state. Written field by field ({@link KryoSerializable}): Kryo's default
     * serializer of the object graph tracks every reference and writes per-object headers, which
     * was the largest part of the state's cost per batch.
     */
    public static final class State extends KeyedState.Stamped implements KryoSerializable {
        public HashMap<String, ArrayList<Tx>> cards = new HashMap<>();
        public ArrayList<Ue> user = new ArrayList<>();
        public long newest = Long.MIN_VALUE;
        public State() {}

        @Override
        public void write(Kryo kryo, Output out) {
            out.writeLong(touchedMs);
            out.writeLong(newest);
            out.writeInt(cards.size(), true);
            for (java.util.Map.Entry<String, ArrayList<Tx>> e : cards.entrySet()) {
                out.writeString(e.getKey());
                out.writeInt(e.getValue().size(), true);
                for (Tx t : e.getValue()) {
                    out.writeLong(t.ts);
                    out.writeString(t.id);
                    out.writeString(t.merchant);
                    out.writeString(t.country);
                    out.writeString(t.device);
                    out.writeDouble(t.amt);
                    out.writeDouble(t.lat);
                    out.writeDouble(t.lon);
                    out.writeByte((t.latNull ? 1 : 0) | (t.lonNull ? 2 : 0) | (t.present ? 4 : 0));
                }
            }
            out.writeInt(user.size(), true);
            for (Ue u : user) {
                out.writeLong(u.ts);
                out.writeString(u.id);
                out.writeString(u.country);
                out.writeByte((u.risky ? 1 : 0) | (u.device ? 2 : 0));
            }
        }

        @Override
        public void read(Kryo kryo, Input in) {
            touchedMs = in.readLong();
            newest = in.readLong();
            int nCards = in.readInt(true);
            cards = new HashMap<>(nCards * 2);
            for (int i = 0; i < nCards; i++) {
                String card = in.readString();
                int n = in.readInt(true);
                ArrayList<Tx> l = new ArrayList<>(n + 4);
                for (int j = 0; j < n; j++) {
                    Tx t = new Tx();
                    t.ts = in.readLong();
                    t.id = in.readString();
                    t.merchant = in.readString();
                    t.country = in.readString();
                    t.device = in.readString();
                    t.amt = in.readDouble();
                    t.lat = in.readDouble();
                    t.lon = in.readDouble();
                    byte flags = in.readByte();
                    t.latNull = (flags & 1) != 0; t.lonNull = (flags & 2) != 0; t.present = (flags & 4) != 0;
                    l.add(t);
                }
                cards.put(card, l);
            }
            int nUser = in.readInt(true);
            user = new ArrayList<>(nUser + 4);
            for (int i = 0; i < nUser; i++) {
                Ue u = new Ue();
                u.ts = in.readLong();
                u.id = in.readString();
                u.country = in.readString();
                byte flags = in.readByte();
                u.risky = (flags & 1) != 0; u.device = (flags & 2) != 0;
                user.add(u);
            }
        }
    }

    static final Comparator<Tx> TX_ORDER = (a, b) -> a.ts != b.ts ? Long.compare(a.ts, b.ts) : a.id.compareTo(b.id);

    /** Output schema: the transaction columns (input minus the state's own) then FEATURES. */
    public static StructType outputSchema(StructType input) {
        List<StructField> out = new ArrayList<>();
        HashSet<String> own = new HashSet<>(Arrays.asList("_kind", "_ts", "_kts", "_amt", "event_type", "ip_country",
                                                              "kafka_partition", "kafka_offset", "device_id"));
        for (StructField f : input.fields()) if (!own.contains(f.name())) out.add(f);
        for (String name : FEATURES) out.add(DataTypes.createStructField(name, DataTypes.DoubleType, true));
        return DataTypes.createStructType(out);
    }

    /**
     * events: transactions (_kind "tx") and user events ("ue") of valid rows, with the INPUT
     * columns; returns one row per new transaction with its features ({@code transformWithState},
     * keyed by customer). {@code initial} (nullable): past events in the same columns (a batch
     * frame), counted from the first batch of a new checkpoint.
     */
    public static Dataset<Row> apply(Dataset<Row> events, long latenessMs, Dataset<Row> initial) {
        return KeyedState.transform(events, KEY, logic(events.schema(), latenessMs), outputSchema(events.schema()),
                                    HOME_LOOKBACK + latenessMs, initial);
    }

    /** The same state as {@code flatMapGroupsWithState} (the operator finlake used before; benchmarks). */
    public static Dataset<Row> applyFlatMap(Dataset<Row> events, long latenessMs) {
        return KeyedState.flatMap(events, KEY, logic(events.schema(), latenessMs), outputSchema(events.schema()),
                                  HOME_LOOKBACK + latenessMs);
    }

    static Fn logic(StructType in, long latenessMs) {
        int[][] cols = KeyedState.columns(in, outputSchema(in), INPUT, FEATURES.length);
        return new Fn(cols[0], cols[1], latenessMs);
    }

    static final class Fn implements KeyedState.Logic<State> {
        final int[] c;   // indexes of INPUT columns
        final int[] pass;
        final long lateness, retention;

        Fn(int[] idx, int[] pass, long latenessMs) {
            this.c = idx; this.pass = pass; this.lateness = latenessMs; this.retention = HOME_LOOKBACK + latenessMs;
        }

        @Override
        public State empty() { return new State(); }

        @Override
        public Class<State> stateClass() { return State.class; }

        /** Adds the rows' new events to the state; emits each new transaction's features when {@code emit}. */
        @Override
        public List<Row> add(State st, List<Row> rows, boolean emit) {
            HashSet<String> seen = new HashSet<>();
            for (ArrayList<Tx> l : st.cards.values()) for (Tx t : l) seen.add(t.id);
            for (Ue u : st.user) seen.add(u.id);
            List<Row> batch = KeyedState.inArrivalOrder(rows, c[2], c[14], c[15]);
            List<Row> newTx = new ArrayList<>();
            HashSet<String> touched = new HashSet<>();
            for (Row r : batch) {
                String id = r.getString(c[3]);
                if (!seen.add(id)) continue;
                long ts = r.getLong(c[1]);
                st.newest = Math.max(st.newest, ts);
                if ("tx".equals(r.getString(c[0]))) {
                    Tx t = new Tx();
                    t.ts = ts; t.id = id; t.merchant = r.getString(c[6]); t.country = r.getString(c[7]);
                    t.amt = r.getDouble(c[8]);
                    t.latNull = r.isNullAt(c[10]); t.lat = t.latNull ? Double.NaN : r.getDouble(c[10]);
                    t.lonNull = r.isNullAt(c[11]); t.lon = t.lonNull ? Double.NaN : r.getDouble(c[11]);
                    t.present = !"ecommerce".equals(r.getString(c[9]));
                    t.device = r.isNullAt(c[16]) ? null : r.getString(c[16]);
                    String card = r.getString(c[5]);
                    st.cards.computeIfAbsent(card, k -> new ArrayList<>()).add(t);
                    touched.add(card);
                    newTx.add(r);
                } else {
                    Ue u = new Ue();
                    u.ts = ts; u.id = id; u.country = r.isNullAt(c[13]) ? null : r.getString(c[13]);
                    String type = r.getString(c[12]);
                    u.risky = Arrays.asList(RISKY).contains(type);
                    u.device = "device_change".equals(type);
                    st.user.add(u);
                }
            }
            for (String card : touched) st.cards.get(card).sort(TX_ORDER);
            List<Row> out = new ArrayList<>(emit ? newTx.size() : 0);
            if (emit) for (Row r : newTx) out.add(emit(r, st));
            prune(st);
            return out;
        }

        void prune(State st) {
            long cards = st.newest - retention, user = st.newest - H24 - lateness;
            st.cards.values().forEach(l -> l.removeIf(t -> t.ts < cards));
            st.cards.values().removeIf(List::isEmpty);
            st.user.removeIf(u -> u.ts < user);
        }

        Row emit(Row r, State st) {
            long t = r.getLong(c[1]);
            String id = r.getString(c[3]);
            List<Tx> h = st.cards.get(r.getString(c[5]));
            double amt = r.getDouble(c[8]);
            Double lat = r.isNullAt(c[10]) ? null : r.getDouble(c[10]);
            Double lon = r.isNullAt(c[11]) ? null : r.getDouble(c[11]);
            String channel = r.getString(c[9]);
            long[] spans = {M10, H1, H24};
            Object[] f = new Object[FEATURES.length];
            for (int w = 0; w < 3; w++) {
                long n = 0;
                double sum = 0, max = Double.NEGATIVE_INFINITY;
                for (Tx x : h) {
                    if (x.ts < t - spans[w] || x.ts > t) continue;
                    n++; sum += x.amt; max = Math.max(max, x.amt);
                }
                f[w] = (double) n;
                f[3 + w] = sum;
                f[6 + w] = sum / n;
                f[9 + w] = max;
            }
            HashSet<String> merchants = new HashSet<>(), countries = new HashSet<>();
            for (Tx x : h) {
                if (x.ts < t - H24 || x.ts > t) continue;
                if (x.merchant != null) merchants.add(x.merchant);
                if (x.country != null) countries.add(x.country);
            }
            f[12] = (double) merchants.size();
            f[13] = (double) countries.size();
            // Previous transaction by (event time, event id); last non-null lat and lon before it.
            Tx prev = null;
            Double prevLat = null, prevLon = null;
            long hn = 0; double hLat = 0, hLon = 0; long nLat = 0, nLon = 0;
            long sn = 0; double mean = 0, m2 = 0, sumAmt = 0;
            for (Tx x : h) {
                boolean before = x.ts < t || (x.ts == t && x.id.compareTo(id) < 0);
                if (before) {
                    prev = x;
                    if (!x.latNull) prevLat = x.lat;
                    if (!x.lonNull) prevLon = x.lon;
                }
                if (x.ts >= t - HOME_LOOKBACK && x.ts <= t - 1) {
                    if (x.present && !x.latNull) { hLat += x.lat; nLat++; }
                    if (x.present && !x.lonNull) { hLon += x.lon; nLon++; }
                    // Central moments updated in event-time order, as Spark's stddev does.
                    sn++; sumAmt += x.amt;
                    double delta = x.amt - mean, deltaN = delta / sn;
                    mean += deltaN;
                    m2 += delta * (delta - deltaN);
                }
            }
            f[14] = prev == null ? null : (double) (t - prev.ts) / 1000.0;
            f[15] = haversine(prevLat, prevLon, lat, lon);
            f[16] = haversine(nLat == 0 ? null : hLat / nLat, nLon == 0 ? null : hLon / nLon, lat, lon);
            Double histMean = sn == 0 ? null : sumAmt / sn;
            Double histSd = sn < 2 ? null : Math.sqrt(m2 / (sn - 1));
            f[17] = histMean == null || histMean == 0 ? null : amt / histMean;   // zero-amount history: null, as try_divide
            f[18] = (histSd != null && histSd > 0) ? (amt - histMean) / histSd : null;
            long risky1 = 0, risky24 = 0, devices = 0;
            HashSet<String> ipCountries = new HashSet<>();
            for (Ue u : st.user) {
                if (u.ts > t || u.ts < t - H24) continue;
                if (u.risky) { risky24++; if (u.ts >= t - H1) risky1++; }
                if (u.device) devices++;
                if (u.country != null) ipCountries.add(u.country);
            }
            f[19] = (double) risky1;
            f[20] = (double) risky24;
            f[21] = (double) devices;
            f[22] = (double) ipCountries.size();
            f[23] = "ecommerce".equals(channel) ? 1.0 : 0.0;
            f[24] = "atm".equals(channel) ? 1.0 : 0.0;
            // The customer's spending over days, every card of theirs: [t - span, t], and the
            // amount against the mean of [t - 30 d, t - 1 ms]. The 30-day pass also finds the
            // row's device among those transactions (this one too).
            String device = r.isNullAt(c[16]) ? null : r.getString(c[16]);
            long dn = 0, first = Long.MAX_VALUE;
            long[] days = {H24, 7 * H24, 30 * H24};
            for (int w = 0; w < 3; w++) {
                long n = 0;
                double sum = 0;
                for (List<Tx> card : st.cards.values()) {
                    for (Tx x : card) {
                        if (x.ts < t - days[w] || x.ts > t) continue;
                        n++; sum += x.amt;
                        if (w == 2 && device != null && device.equals(x.device)) { dn++; first = Math.min(first, x.ts); }
                    }
                }
                f[25 + w] = (double) n;
                f[28 + w] = sum / n;
            }
            long hn30 = 0;
            double hsum30 = 0;
            for (List<Tx> card : st.cards.values()) {
                for (Tx x : card) {
                    if (x.ts < t - 30 * H24 || x.ts > t - 1) continue;
                    hn30++; hsum30 += x.amt;
                }
            }
            f[31] = hn30 == 0 || hsum30 == 0 ? null : amt / (hsum30 / hn30);
            long hour = Math.floorMod(Math.floorDiv(t, H1), 24L);
            f[32] = (double) hour;
            f[33] = hour < 6 ? 1.0 : 0.0;
            f[34] = Math.floorMod(Math.floorDiv(t, H24) + 3, 7L) >= 5 ? 1.0 : 0.0;
            if (device != null) {
                f[35] = (double) dn;
                f[36] = (double) (t - first) / 1000.0;
            }
            return KeyedState.output(r, pass, f);
        }
    }

    public static final long HOME_LOOKBACK = 30L * 86_400_000L;

    /** Great-circle distance in km, as lakehouse.gold.haversine_km computes it (null in, null out). */
    static Double haversine(Double lat1, Double lon1, Double lat2, Double lon2) {
        if (lat1 == null || lon1 == null || lat2 == null || lon2 == null) return null;
        double p1 = Math.toRadians(lat1), p2 = Math.toRadians(lat2);
        double a = StrictMath.pow(Math.sin((p2 - p1) / 2), 2.0)
            + Math.cos(p1) * Math.cos(p2) * StrictMath.pow(Math.sin(Math.toRadians(lon2 - lon1) / 2), 2.0);
        return 2 * 6371.0 * Math.asin(Math.sqrt(a));
    }
}
