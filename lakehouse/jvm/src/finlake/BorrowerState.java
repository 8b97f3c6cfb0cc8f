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
 * The loan-PD decision path's per-customer state: the customer's credit-bureau snapshots in
 * (event time, event id) order, in Spark's state store. For every new loan application it emits
 * the application's columns and the features {@code lakehouse.gold.borrower_features} computes:
 * the latest snapshot at or before the application (a snapshot at the same instant counts), its
 * age, and the loan against income, over the snapshots that have arrived up to the end of the
 * batch; an application with no snapshot in the lookback gets null bureau features (the gate
 * refuses it, as it refuses gold's row).
 *
 * <p>A snapshot older than the lookback behind the key's newest event is pruned (the newest such
 * one is kept, for an application that arrives late), as are the ids of applications older than
 * that; a repeated event id is dropped, so each application is decided once. A key idle for the
 * lookback is removed (TTL).
 */
public final class BorrowerState {
    private BorrowerState() {}

    /** The state's key column. */
    public static final String KEY = "customer_id";
    /** The bureau's attributes, in the order of FEATURES and of the {@code _b*} input columns. */
    public static final String[] BUREAU = {"credit_score", "utilisation", "delinquencies", "inquiries_6m", "annual_income", "debt_to_income"};
    public static final String[] FEATURES = {
        "credit_score", "utilisation", "delinquencies", "inquiries_6m", "annual_income", "debt_to_income", "snapshot_age_s",
        "loan_to_income", "loan_amount", "term_months",
    };
    /** Input columns the state reads: a snapshot's attributes as {@code _b0.._b5}, an application's loan and term. */
    public static final String[] INPUT = {
        "_kind", "_ts", "_kts", "kafka_partition", "kafka_offset", "event_id", "customer_id",
        "_b0", "_b1", "_b2", "_b3", "_b4", "_b5", "_loan", "_term",
    };
    static final int KEEP_APPS = 256;

    /** One bureau snapshot. */
    public static final class Snapshot implements Serializable {
        public long ts;
        public String id;
        public double[] attrs = new double[BUREAU.length];
        public Snapshot() {}
    }

    /** A customer's state (written field by field, as {@code FraudState.State}). */
    public static final class State extends KeyedState.Stamped implements KryoSerializable {
        public ArrayList<Snapshot> snapshots = new ArrayList<>();
        public ArrayList<String> appIds = new ArrayList<>();
        public ArrayList<Long> appTs = new ArrayList<>();
        public long newest = Long.MIN_VALUE;
        public State() {}

        @Override
        public void write(Kryo kryo, Output out) {
            out.writeLong(touchedMs);
            out.writeLong(newest);
            out.writeInt(snapshots.size(), true);
            for (Snapshot s : snapshots) {
                out.writeLong(s.ts);
                out.writeString(s.id);
                for (double a : s.attrs) out.writeDouble(a);
            }
            out.writeInt(appIds.size(), true);
            for (int i = 0; i < appIds.size(); i++) {
                out.writeString(appIds.get(i));
                out.writeLong(appTs.get(i));
            }
        }

        @Override
        public void read(Kryo kryo, Input in) {
            touchedMs = in.readLong();
            newest = in.readLong();
            int n = in.readInt(true);
            snapshots = new ArrayList<>(n + 2);
            for (int i = 0; i < n; i++) {
                Snapshot s = new Snapshot();
                s.ts = in.readLong();
                s.id = in.readString();
                for (int j = 0; j < BUREAU.length; j++) s.attrs[j] = in.readDouble();
                snapshots.add(s);
            }
            int m = in.readInt(true);
            appIds = new ArrayList<>(m + 2);
            appTs = new ArrayList<>(m + 2);
            for (int i = 0; i < m; i++) {
                appIds.add(in.readString());
                appTs.add(in.readLong());
            }
        }
    }

    static final Comparator<Snapshot> ORDER = (a, b) -> a.ts != b.ts ? Long.compare(a.ts, b.ts) : a.id.compareTo(b.id);

    /** Output schema: the application's columns (input minus the state's own) then FEATURES. */
    public static StructType outputSchema(StructType input) {
        List<StructField> out = new ArrayList<>();
        HashSet<String> own = new HashSet<>(Arrays.asList(INPUT));
        own.remove("event_id");
        own.remove("customer_id");
        for (StructField f : input.fields()) if (!own.contains(f.name())) out.add(f);
        for (String name : FEATURES) out.add(DataTypes.createStructField(name, DataTypes.DoubleType, true));
        return DataTypes.createStructType(out);
    }

    /**
     * events: loan applications (_kind "app") and bureau updates ("bureau") of valid rows, with the
     * INPUT columns; one row per new application with its features ({@code transformWithState},
     * keyed by customer). {@code lookbackMs}: how far back a snapshot still counts (gold's
     * {@code pipeline.bureau_history_days}), also the state's TTL. {@code initial} (nullable): past
     * events in the same columns (a batch frame), counted from the first batch of a new checkpoint.
     */
    public static Dataset<Row> apply(Dataset<Row> events, long lookbackMs, Dataset<Row> initial) {
        return KeyedState.transform(events, KEY, logic(events.schema(), lookbackMs), outputSchema(events.schema()), lookbackMs, initial);
    }

    static Fn logic(StructType in, long lookbackMs) {
        int[][] cols = KeyedState.columns(in, outputSchema(in), INPUT, FEATURES.length);
        return new Fn(cols[0], cols[1], lookbackMs);
    }

    static final class Fn implements KeyedState.Logic<State> {
        final int[] c, pass;
        final long lookback;

        Fn(int[] idx, int[] pass, long lookbackMs) { this.c = idx; this.pass = pass; this.lookback = lookbackMs; }

        @Override
        public State empty() { return new State(); }

        @Override
        public Class<State> stateClass() { return State.class; }

        @Override
        public List<Row> add(State st, List<Row> rows, boolean emit) {
            HashSet<String> seen = new HashSet<>(st.appIds);
            for (Snapshot s : st.snapshots) seen.add(s.id);
            List<Row> batch = KeyedState.inArrivalOrder(rows, c[2], c[3], c[4]);
            List<Row> apps = new ArrayList<>();
            for (Row r : batch) {
                String id = r.getString(c[5]);
                if (!seen.add(id)) continue;
                long ts = r.getLong(c[1]);
                st.newest = Math.max(st.newest, ts);
                if ("app".equals(r.getString(c[0]))) {
                    st.appIds.add(id);
                    st.appTs.add(ts);
                    apps.add(r);
                } else {
                    Snapshot s = new Snapshot();
                    s.ts = ts; s.id = id;
                    for (int j = 0; j < BUREAU.length; j++) s.attrs[j] = r.getDouble(c[7 + j]);
                    st.snapshots.add(s);
                }
            }
            st.snapshots.sort(ORDER);
            List<Row> out = new ArrayList<>(emit ? apps.size() : 0);
            for (int i = 0; emit && i < apps.size(); i++) out.add(emit(apps.get(i), st.snapshots));
            prune(st);
            return out;
        }

        /** Drops snapshots and application ids older than the lookback behind the newest event, keeping the newest such snapshot. */
        void prune(State st) {
            long horizon = st.newest - lookback;
            int old = 0;
            while (old < st.snapshots.size() && st.snapshots.get(old).ts < horizon) old++;
            if (old > 1) st.snapshots.subList(0, old - 1).clear();
            ArrayList<String> ids = new ArrayList<>();
            ArrayList<Long> times = new ArrayList<>();
            for (int i = Math.max(0, st.appIds.size() - KEEP_APPS); i < st.appIds.size(); i++) {
                if (st.appTs.get(i) >= horizon) {
                    ids.add(st.appIds.get(i));
                    times.add(st.appTs.get(i));
                }
            }
            st.appIds = ids;
            st.appTs = times;
        }

        Row emit(Row r, List<Snapshot> snapshots) {
            long ts = r.getLong(c[1]);
            Snapshot at = null;
            for (int j = snapshots.size() - 1; j >= 0; j--) {
                Snapshot s = snapshots.get(j);
                if (s.ts <= ts) {
                    if (s.ts >= ts - lookback) at = s;
                    break;
                }
            }
            Double loan = r.isNullAt(c[13]) ? null : r.getDouble(c[13]);
            Double term = r.isNullAt(c[14]) ? null : r.getDouble(c[14]);
            Object[] f = new Object[FEATURES.length];
            if (at != null) {
                for (int j = 0; j < BUREAU.length; j++) f[j] = at.attrs[j];
                f[6] = (ts - at.ts) / 1000.0;
                double income = at.attrs[4];
                f[7] = loan == null || income == 0.0 ? null : loan / income;
            }
            f[8] = loan;
            f[9] = term;
            return KeyedState.output(r, pass, f);
        }
    }
}
