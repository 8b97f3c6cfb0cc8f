package finlake;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * A file the driver rewrites (atomically, by rename) and the tasks of a streaming plan read: a
 * served model version ({@link Scorer}), a risk snapshot ({@link Risk}). Loaded once per JVM and
 * key (each task gets its own copy of a function: without this each one would read and parse
 * the file again), re-read when its modification time or length changes, checked at most every
 * {@code refreshMs}. A new content that does not load keeps the one loaded; with none loaded yet
 * the error is raised.
 */
final class ServedFile {
    private ServedFile() {}

    interface Loader<T> {
        T load(String text) throws Exception;
    }

    private static final class Entry {
        volatile Object value;
        volatile long checkedAt, modifiedAt, length = -1;
    }

    private static final ConcurrentHashMap<String, Entry> CACHE = new ConcurrentHashMap<>();

    /** The value loaded once from {@code text} under {@code key} (an inline spec). */
    @SuppressWarnings("unchecked")
    static <T> T inline(String key, String text, Loader<T> loader) throws Exception {
        Entry e = CACHE.computeIfAbsent(key, k -> new Entry());
        if (e.value == null) {
            synchronized (e) {
                if (e.value == null) e.value = loader.load(text);
            }
        }
        return (T) e.value;
    }

    /** The value loaded from the file at {@code path} (any Hadoop file system) under {@code key}. */
    @SuppressWarnings("unchecked")
    static <T> T current(String key, String path, long refreshMs, Loader<T> loader) throws Exception {
        Entry e = CACHE.computeIfAbsent(key, k -> new Entry());
        Object v = e.value;
        long now = System.currentTimeMillis();
        if (v != null && now - e.checkedAt < refreshMs) return (T) v;
        synchronized (e) {
            if (e.value == null || now - e.checkedAt >= refreshMs) {
                Path p = new Path(path);
                FileSystem fs = p.getFileSystem(new Configuration());
                FileStatus st = fs.getFileStatus(p);
                if (e.value == null || st.getModificationTime() != e.modifiedAt || st.getLen() != e.length) {
                    byte[] bytes;
                    try (InputStream in = fs.open(p)) {
                        bytes = in.readAllBytes();
                    }
                    try {
                        e.value = loader.load(new String(bytes, StandardCharsets.UTF_8));
                    } catch (Exception err) {
                        if (e.value == null) throw err;
                    }
                    e.modifiedAt = st.getModificationTime();
                    e.length = st.getLen();
                }
                e.checkedAt = now;
            }
            return (T) e.value;
        }
    }
}
