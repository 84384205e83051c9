package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The all-in-one keeps its data (here a conversation's notes) in its data
// directory, by default botmesh in the user's state directory: a note
// outlives a clean exit and a kill -9; a second botmesh on the same
// directory is refused while the first runs.
func TestAllInOneDataDirKeepsNotes(t *testing.T) {
	home := t.TempDir()
	dataDir := filepath.Join(home, "state", "botmesh") // $XDG_STATE_HOME/botmesh
	dataLine := regexp.MustCompile(`(?m)^Data \(notes, schedules, audit\) kept across restarts in ` + regexp.QuoteMeta(dataDir) + ` \(--data_dir\)$`)

	aio := startPiped(t, "botmesh", "botmesh", asUser(home), "--log_level", "info")
	waitStderr(t, aio.p, dataLine, 30*time.Second)
	if got := aio.ask(t, "notes"); got != "no notes here yet (note add TEXT keeps one)" {
		t.Fatalf("notes at first: %q", got)
	}
	if got := aio.ask(t, "note add deploy at 5pm, not before"); got != "noted (note 1)" {
		t.Fatalf("note add: %q", got)
	}

	second := start(t, "botmesh-2", "botmesh", asUser(home), "--creds_file", filepath.Join(t.TempDir(), "c.creds"), "--inputs", "shell")
	select {
	case <-second.done:
	case <-time.After(30 * time.Second):
		t.Fatal("a second botmesh on the same data directory still runs after 30s")
	}
	want := "botmesh: data directory " + dataDir + ": in use by another running botmesh; give this one another --data_dir (or BOTMESH_DATA_DIR)\n"
	if got := second.stderr.String(); got != want {
		t.Errorf("second botmesh: exit %v, stderr:\n%s\nwant:\n%s", second.err, got, want)
	}
	if ee, ok := second.err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("second botmesh: %v, want exit status 1", second.err)
	}

	aio.in.Close()
	select {
	case <-aio.p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("botmesh did not exit 30s after the end of its input")
	}

	wantNotes := regexp.MustCompile(`^1\. deploy at 5pm, not before \(.+\)$`)
	for i, how := range []string{"after a clean exit", "after kill -9"} {
		aio := startPiped(t, "botmesh", "botmesh", asUser(home), "--log_level", "info")
		waitStderr(t, aio.p, dataLine, 30*time.Second)
		if got := aio.ask(t, "notes"); !wantNotes.MatchString(got) {
			t.Fatalf("notes %s: %q", how, got)
		}
		if i == 0 {
			if err := aio.p.stop(t, syscall.SIGKILL, 30*time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("kill -9: %v", err)
			}
		} else {
			aio.in.Close()
			<-aio.p.done
		}
	}
}
