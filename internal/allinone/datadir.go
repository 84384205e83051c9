package allinone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// DefaultDataDir returns where the all-in-one keeps its data by default:
// botmesh in the user's state directory ($XDG_STATE_HOME, else
// ~/.local/state), the place the XDG base directory specification gives
// data that should outlive a restart but is not worth a backup.
func DefaultDataDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "botmesh"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no directory for botmesh's data: %w", err)
	}
	return filepath.Join(home, ".local", "state", "botmesh"), nil
}

// ErrDataDirInUse says that another running botmesh keeps its data in the
// directory: two NATS servers on one JetStream store would damage it.
var ErrDataDirInUse = errors.New("in use by another running botmesh")

// openDataDir makes dir (mode 0700: the store holds every command's
// memory and the audit records) and takes its lock for as long as this
// process runs, or until release is called.
func openDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w (set --data_dir to a writable directory)", err)
	}
	release, err = lockDir(dir)
	if errors.Is(err, ErrDataDirInUse) {
		return nil, fmt.Errorf("data directory %s: %w; give this one another --data_dir (or BOTMESH_DATA_DIR)", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	return release, nil
}
