package finlake;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

import org.apache.spark.api.java.function.FlatMapGroupsWithStateFunction;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.KeyValueGroupedDataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.streaming.ExpiredTimerInfo;
import org.apache.spark.sql.streaming.GroupState;
import org.apache.spark.sql.streaming.GroupStateTimeout;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessorWithInitialState;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import org.apache.spark.sql.types.StructType;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The wiring every per-key state of the decision paths shares: the state of a key is one value
 * (a {@link Logic}'s state object, Kryo-serialised) in Spark's state store, updated once per key
 * and batch, removed when the key has been idle for the TTL (processing time).
 *
 * <p>{@link #transform} runs it as Spark's {@code transformWithState} (the JVM
 * {@code StatefulProcessor} Real-Time Mode accepts from Spark 4.3), with a timer per key for the
 * TTL and an optional initial state: a batch frame of past events in the input's columns, absorbed per key
 * in the query's first batch (a new checkpoint) before its own events, so a known key's first
 * decision counts its history. {@link #flatMap} runs the same logic as
 * {@code flatMapGroupsWithState} (kept for the benchmark that compares the two operators).
 */
public final class KeyedState {
    private KeyedState() {}

    /** A key's state object: the logic's own fields and when the key was last updated (processing time). */
    public static class Stamped implements Serializable {
        public long touchedMs;
    }

    /** What differs per use case: the state object, how a key's new rows update it and what they emit. */
    public interface Logic<S extends Stamped> extends Serializable {
        S empty();

        Class<S> stateClass();

        /**
         * Rows of one key: update the state and, with {@code emit} (a batch's new rows), return one
         * output row per new event; without (past rows, the initial state), return nothing.
         */
        List<Row> add(S state, List<Row> rows, boolean emit);
    }

    /** Where a logic's INPUT columns are in {@code in}, and the input columns {@code out} passes through first. */
    public static int[][] columns(StructType in, StructType out, String[] input, int features) {
        int[] idx = new int[input.length];
        for (int i = 0; i < input.length; i++) idx[i] = in.fieldIndex(input[i]);
        int[] pass = new int[out.size() - features];
        for (int i = 0; i < pass.length; i++) pass[i] = in.fieldIndex(out.fields()[i].name());
        return new int[][] {idx, pass};
    }

    /**
     * A copy of {@code rows} in arrival order: Kafka time, then partition and offset (columns
     * {@code kts}, {@code partition}, {@code offset}), so of copies of one id the first by Kafka
     * position counts, as in silver.
     */
    public static List<Row> inArrivalOrder(List<Row> rows, int kts, int partition, int offset) {
        List<Row> batch = new ArrayList<>(rows);
        batch.sort(Comparator.comparingLong((Row r) -> r.getLong(kts)).thenComparingInt(r -> r.getInt(partition))
                   .thenComparingLong(r -> r.getLong(offset)));
        return batch;
    }

    /** An output row: the input row's {@code pass} columns, then the features. */
    public static Row output(Row r, int[] pass, Object[] features) {
        Object[] values = new Object[pass.length + features.length];
        for (int i = 0; i < pass.length; i++) values[i] = r.get(pass[i]);
        System.arraycopy(features, 0, values, pass.length, features.length);
        return RowFactory.create(values);
    }

    static List<Row> drain(scala.collection.Iterator<Row> rows) {
        List<Row> out = new ArrayList<>();
        java.util.Iterator<Row> it = CollectionConverters.asJava(rows);
        while (it.hasNext()) out.add(it.next());
        return out;
    }

    /**
     * The {@code transformWithState} processor: one {@code ValueState} per key, removed once the key
     * has been idle for {@code ttlMs} of processing time. The idle rule is one processing-time timer
     * per key, registered when its state is created and, when it fires, cleared if the key was not
     * updated since or moved to the last update plus the TTL. (The state's built-in TTL writes an
     * index entry on every update: 8% of the state's throughput in bench/state_candidates.)
     */
    static final class Processor<S extends Stamped> extends StatefulProcessorWithInitialState<String, Row, Row, Row> {
        final Logic<S> logic;
        final long ttlMs;
        transient ValueState<S> state;

        Processor(Logic<S> logic, long ttlMs) { this.logic = logic; this.ttlMs = ttlMs; }

        @Override
        public void init(OutputMode outputMode, TimeMode timeMode) {
            state = getHandle().getValueState("state", Encoders.kryo(logic.stateClass()), TTLConfig.NONE());
        }

        void save(S st, boolean created, TimerValues timers) {
            st.touchedMs = timers.getCurrentProcessingTimeInMs();
            state.update(st);
            if (created) getHandle().registerTimer(st.touchedMs + ttlMs);
        }

        @Override
        public scala.collection.Iterator<Row> handleInputRows(String key, scala.collection.Iterator<Row> rows, TimerValues timers) {
            S st = state.get();   // null when the key has none: one read of the store
            boolean created = st == null;
            if (created) st = logic.empty();
            List<Row> out = logic.add(st, drain(rows), true);
            save(st, created, timers);
            return CollectionConverters.asScala(out.iterator());
        }

        /** One row per key: the key and its past events (an array of rows in the input's columns). */
        @Override
        public void handleInitialState(String key, Row history, TimerValues timers) {
            S st = state.get();
            boolean created = st == null;
            if (created) st = logic.empty();
            logic.add(st, history.getList(1), false);
            save(st, created, timers);
        }

        @Override
        public scala.collection.Iterator<Row> handleExpiredTimer(String key, TimerValues timers, ExpiredTimerInfo info) {
            S st = state.get();
            if (st != null) {
                long due = st.touchedMs + ttlMs;
                if (due <= timers.getCurrentProcessingTimeInMs()) state.clear();
                else getHandle().registerTimer(due);
            }
            return CollectionConverters.asScala(new ArrayList<Row>().iterator());
        }
    }

    /**
     * Rows grouped by the string column {@code key}, read as a column: {@code groupByKey} with a key
     * function would deserialise every row to an object and generate a row joiner per task.
     */
    static KeyValueGroupedDataset<String, Row> byKey(Dataset<Row> rows, String key) {
        return rows.groupBy(functions.col(key)).as(Encoders.STRING(), Encoders.row(rows.schema()));
    }

    /**
     * {@code transformWithState} over {@code events} grouped by column {@code key}; {@code initial}
     * (nullable): past events in the same columns, batch, absorbed in the first batch.
     */
    public static <S extends Stamped> Dataset<Row> transform(Dataset<Row> events, String key, Logic<S> logic, StructType out, long ttlMs,
                                             Dataset<Row> initial) {
        KeyValueGroupedDataset<String, Row> grouped = byKey(events, key);
        Processor<S> processor = new Processor<>(logic, ttlMs);
        Encoder<Row> output = Encoders.row(out);
        if (initial == null) {
            return grouped.transformWithState(processor, TimeMode.ProcessingTime(), OutputMode.Append(), output);
        }
        Column[] cols = new Column[events.schema().size()];
        for (int i = 0; i < cols.length; i++) cols[i] = functions.col(events.schema().fieldNames()[i]);
        // The same columns in the same order as the stream's rows, so the logic reads both alike.
        Dataset<Row> perKey = initial.select(cols).groupBy(functions.col(key))
            .agg(functions.collect_list(functions.struct(cols)).as("events"));
        return grouped.transformWithState(processor, TimeMode.ProcessingTime(), OutputMode.Append(), byKey(perKey, key), output,
                                          Encoders.row(perKey.schema()));
    }

    /** The same logic as {@code flatMapGroupsWithState} with a processing-time timeout of {@code ttlMs}. */
    public static <S extends Stamped> Dataset<Row> flatMap(Dataset<Row> events, String key, Logic<S> logic, StructType out, long ttlMs) {
        FlatMapGroupsWithStateFunction<String, Row, S, Row> fn = (String id, java.util.Iterator<Row> rows, GroupState<S> gs) -> {
            if (gs.hasTimedOut()) {
                gs.remove();
                return new ArrayList<Row>().iterator();
            }
            S st = gs.exists() ? gs.get() : logic.empty();
            List<Row> batch = new ArrayList<>();
            rows.forEachRemaining(batch::add);
            List<Row> emitted = logic.add(st, batch, true);
            gs.update(st);
            gs.setTimeoutDuration(ttlMs);
            return emitted.iterator();
        };
        return byKey(events, key).flatMapGroupsWithState(fn, OutputMode.Append(), Encoders.kryo(logic.stateClass()), Encoders.row(out),
                                    GroupStateTimeout.ProcessingTimeTimeout());
    }
}
