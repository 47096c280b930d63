package infra

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
)

// DataDirMode is the data dir's mode: it holds the SQLite store (with the
// users' password hashes), the generated JWT secret and the embedded
// Redis' password, none of which other local users may read or replace.
const DataDirMode fs.FileMode = 0o700

// warnedDirs holds the data dirs whose mode could not be fixed and were
// warned about, so the modules sharing one dir warn once between them.
var warnedDirs sync.Map

// PrivateDataDir creates dir (and missing parents) at DataDirMode whatever
// the umask, or gives an existing dir that group or others can access that
// mode, with a WARN saying it did. When the chmod fails (the process does
// not own dir), it WARNs that the dir stays open and goes on: the files
// Aurora keeps there are 0600 anyway. Only failing to create dir is an
// error.
func PrivateDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, DataDirMode); err != nil {
		return fmt.Errorf("create data dir %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	was := fi.Mode().Perm()
	if was&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, DataDirMode); err != nil {
		if _, dup := warnedDirs.LoadOrStore(dir, true); !dup {
			log.Warn(fmt.Sprintf("data dir %s is mode %#o, open to other local users, and could not be tightened to %#o: %v; "+
				"the files Aurora keeps there are 0600, but others can list them (and delete or replace them if the dir is writable to them): "+
				"make the dir owned by the user Aurora runs as, mode %#o, or point data_dir at a subdirectory Aurora creates itself",
				dir, was, DataDirMode, err, DataDirMode), "path", dir, "mode", fmt.Sprintf("%#o", was))
		}
		return nil
	}
	log.Warn(fmt.Sprintf("data dir %s was mode %#o, open to other local users; tightened it to %#o", dir, was, DataDirMode),
		"path", dir, "was", fmt.Sprintf("%#o", was))
	return nil
}
