package finlake;

import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.ChecksumFs;
import org.apache.hadoop.fs.DelegateToFileSystem;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FsServerDefaults;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.local.LocalConfigKeys;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * The local file system without a child process per file operation.
 *
 * <p>Without Hadoop's native library (it is not on Maven Central), Hadoop's local file system
 * forks {@code chmod} for every file it creates and {@code readlink} for every rename. Every
 * streaming checkpoint file, state store file and Delta commit pays for those forks on the
 * batch's critical path. This file system does the same two things with {@code java.nio}; all
 * else is Hadoop's. finlake sets it for the {@code file:} scheme on local masters only
 * ({@code fs.file.impl} and {@code fs.AbstractFileSystem.file.impl}).
 */
public class FastLocalFileSystem extends LocalFileSystem {

    public FastLocalFileSystem() {
        super(new Raw());
    }

    /** The raw local file system with java.nio permissions and symlink checks. */
    public static class Raw extends RawLocalFileSystem {
        @Override
        public void setPermission(Path p, FsPermission permission) throws IOException {
            File f = pathToFile(p);
            Set<PosixFilePermission> perms = EnumSet.noneOf(PosixFilePermission.class);
            short mode = permission.toShort();
            PosixFilePermission[] bits = {
                PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_READ,
                PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
                PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_READ};
            for (int i = 0; i < bits.length; i++) {
                if ((mode & (1 << i)) != 0) perms.add(bits[i]);
            }
            try {
                Files.setPosixFilePermissions(f.toPath(), perms);
            } catch (UnsupportedOperationException e) {
                super.setPermission(p, permission);
            }
        }

        @Override
        public FileStatus getFileLinkStatus(Path f) throws IOException {
            // Not a symlink (the case of every checkpoint and table file): the file's status, as
            // Hadoop returns it after its readlink finds no target.
            if (!Files.isSymbolicLink(pathToFile(f).toPath())) {
                return getFileStatus(f);
            }
            return super.getFileLinkStatus(f);
        }
    }

    /** The {@code AbstractFileSystem} (FileContext) side, as Hadoop's LocalFs: checksums over the raw one. */
    public static class Fs extends ChecksumFs {
        public Fs(URI uri, Configuration conf) throws IOException, URISyntaxException {
            super(new RawFs(uri, conf));
        }

        public Fs(Configuration conf) throws IOException, URISyntaxException {
            this(new URI("file:///"), conf);
        }
    }

    /** Hadoop's RawLocalFs over {@link Raw}. */
    public static class RawFs extends DelegateToFileSystem {
        public RawFs(URI uri, Configuration conf) throws IOException, URISyntaxException {
            super(uri, new Raw(), conf, "file", false);
        }

        @Override
        public int getUriDefaultPort() {
            return -1;
        }

        @Override
        @SuppressWarnings("deprecation")
        public FsServerDefaults getServerDefaults() throws IOException {
            return LocalConfigKeys.getServerDefaults();
        }

        @Override
        public FsServerDefaults getServerDefaults(Path f) throws IOException {
            return LocalConfigKeys.getServerDefaults();
        }

        @Override
        public boolean isValidName(String src) {
            return true;
        }
    }
}
