package finlake;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
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
 * The trading decision path's per-symbol state: the symbol's most recent ticks in (event time,
 * event id) order, in Spark's state store. For every new tick it emits the tick's columns and
 * the features {@code lakehouse.gold.market_features} computes (returns over 1/5/20 ticks,
 * realised volatility over 20/100, spread, imbalance and its means over 5/20), over the ticks
 * that have arrived up to the end of the batch.
 *
 * <p>State keeps the newest {@code KEEP} ticks (two windows of 100 plus a margin), so a tick that
 * arrives out of order is decided exactly as gold computes it over the arrived ticks as long as
 * fewer than {@code KEEP - 101} newer ticks of its symbol were already held; an older one is
 * decided with the ticks state still holds. A repeated event id is dropped.
 */
public final class MarketState {
    private MarketState() {}

    public static final int KEEP = 240;
    /** The state's key column. */
    public static final String KEY = "symbol";
    public static final String[] FEATURES = {
        "mid", "ret_1", "ret_5", "ret_20", "realised_vol_20", "realised_vol_100", "spread_bps", "imbalance",
        "imbalance_mean_5", "imbalance_mean_20",
    };
    public static final String[] INPUT = {
        "_ts", "_kts", "kafka_partition", "kafka_offset", "event_id", "symbol", "bid", "ask", "bid_size", "ask_size",
    };

    public static final class Tick implements Serializable {
        public long ts;
        public String id;
        public double mid, imbalance;   // imbalance NaN when bid_size + ask_size is 0
        public Tick() {}
    }

    /** A symbol's state, written field by field (see {@code FraudState.State}). */
    public static final class State extends KeyedState.Stamped implements KryoSerializable {
        public ArrayList<Tick> ticks = new ArrayList<>();
        public HashSet<String> ids = new HashSet<>();
        public State() {}

        @Override
        public void write(Kryo kryo, Output out) {
            out.writeLong(touchedMs);
            out.writeInt(ticks.size(), true);
            for (Tick t : ticks) {
                out.writeLong(t.ts);
                out.writeString(t.id);
                out.writeDouble(t.mid);
                out.writeDouble(t.imbalance);
            }
            out.writeInt(ids.size(), true);
            for (String id : ids) out.writeString(id);
        }

        @Override
        public void read(Kryo kryo, Input in) {
            touchedMs = in.readLong();
            int n = in.readInt(true);
            ticks = new ArrayList<>(n + 4);
            for (int i = 0; i < n; i++) {
                Tick t = new Tick();
                t.ts = in.readLong();
                t.id = in.readString();
                t.mid = in.readDouble();
                t.imbalance = in.readDouble();
                ticks.add(t);
            }
            int m = in.readInt(true);
            ids = new HashSet<>(Math.max(16, m * 2));
            for (int i = 0; i < m; i++) ids.add(in.readString());
        }
    }

    static final Comparator<Tick> ORDER = (a, b) -> a.ts != b.ts ? Long.compare(a.ts, b.ts) : a.id.compareTo(b.id);

    public static StructType outputSchema(StructType input) {
        List<StructField> out = new ArrayList<>();
        HashSet<String> own = new HashSet<>(Arrays.asList("_ts", "_kts", "kafka_partition", "kafka_offset"));
        for (StructField f : input.fields()) if (!own.contains(f.name())) out.add(f);
        for (String name : FEATURES) out.add(DataTypes.createStructField(name, DataTypes.DoubleType, true));
        return DataTypes.createStructType(out);
    }

    /**
     * ticks: valid ticks with the INPUT columns; one row per new tick with its features
     * ({@code transformWithState}, keyed by symbol, idle symbols dropped after {@code ttlMs}).
     * {@code initial} (nullable): past ticks in the same columns (a batch frame), counted from
     * the first batch of a new checkpoint.
     */
    public static Dataset<Row> apply(Dataset<Row> ticks, long ttlMs, Dataset<Row> initial) {
        return KeyedState.transform(ticks, KEY, logic(ticks.schema()), outputSchema(ticks.schema()), ttlMs, initial);
    }

    /** The same state as {@code flatMapGroupsWithState} (the operator finlake used before; benchmarks). */
    public static Dataset<Row> applyFlatMap(Dataset<Row> ticks, long ttlMs) {
        return KeyedState.flatMap(ticks, KEY, logic(ticks.schema()), outputSchema(ticks.schema()), ttlMs);
    }

    static Fn logic(StructType in) {
        int[][] cols = KeyedState.columns(in, outputSchema(in), INPUT, FEATURES.length);
        return new Fn(cols[0], cols[1]);
    }

    static final class Fn implements KeyedState.Logic<State> {
        final int[] c, pass;

        Fn(int[] idx, int[] pass) { this.c = idx; this.pass = pass; }

        @Override
        public State empty() { return new State(); }

        @Override
        public Class<State> stateClass() { return State.class; }

        @Override
        public List<Row> add(State st, List<Row> rows, boolean emit) {
            List<Row> batch = KeyedState.inArrivalOrder(rows, c[1], c[2], c[3]);
            List<Row> fresh = new ArrayList<>();
            List<Tick> freshTicks = new ArrayList<>();
            for (Row r : batch) {
                String id = r.getString(c[4]);
                if (!st.ids.add(id)) continue;
                Tick t = new Tick();
                t.ts = r.getLong(c[0]); t.id = id;
                double bid = r.getDouble(c[6]), ask = r.getDouble(c[7]);
                long bs = r.getLong(c[8]), as = r.getLong(c[9]);
                t.mid = (bid + ask) / 2;
                t.imbalance = (bs + as) == 0 ? Double.NaN : (double) (bs - as) / (double) (bs + as);
                st.ticks.add(t);
                fresh.add(r);
                freshTicks.add(t);
            }
            st.ticks.sort(ORDER);
            List<Row> out = new ArrayList<>(emit ? fresh.size() : 0);
            for (int i = 0; emit && i < fresh.size(); i++) {
                Row r = fresh.get(i);
                int at = st.ticks.indexOf(freshTicks.get(i));
                out.add(emit(r, st.ticks, at));
            }
            while (st.ticks.size() > KEEP) {
                Tick gone = st.ticks.remove(0);
                st.ids.remove(gone.id);
            }
            return out;
        }

        static Double ret(List<Tick> t, int at, int lag) {
            return at - lag < 0 ? null : StrictMath.log(t.get(at).mid / t.get(at - lag).mid);
        }

        /** Sample standard deviation of ret_1 over rows [at - span + 1, at], nulls skipped. */
        static Double vol(List<Tick> t, int at, int span) {
            long n = 0;
            double mean = 0, m2 = 0;
            for (int j = Math.max(0, at - span + 1); j <= at; j++) {
                Double x = ret(t, j, 1);
                if (x == null) continue;
                n++;
                double delta = x - mean, deltaN = delta / n;
                mean += deltaN;
                m2 += delta * (delta - deltaN);
            }
            return n < 2 ? null : Math.sqrt(m2 / (n - 1));
        }

        static Double meanImbalance(List<Tick> t, int at, int span) {
            long n = 0;
            double sum = 0;
            for (int j = Math.max(0, at - span + 1); j <= at; j++) {
                double x = t.get(j).imbalance;
                if (Double.isNaN(x)) continue;
                n++; sum += x;
            }
            return n == 0 ? null : sum / n;
        }

        Row emit(Row r, List<Tick> ticks, int at) {
            Tick t = ticks.get(at);
            double bid = r.getDouble(c[6]), ask = r.getDouble(c[7]);
            Object[] f = {
                t.mid, ret(ticks, at, 1), ret(ticks, at, 5), ret(ticks, at, 20), vol(ticks, at, 20), vol(ticks, at, 100),
                (ask - bid) / t.mid * 1e4, Double.isNaN(t.imbalance) ? null : t.imbalance,
                meanImbalance(ticks, at, 5), meanImbalance(ticks, at, 20),
            };
            return KeyedState.output(r, pass, f);
        }
    }
}
