package deploy

// tools/debian-deps.sh, the one list of Debian packages `make test` and
// .ci/run install, run against fake dpkg-query, apt-get, id and sudo: what
// a newcomer sees with and without the right to install.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSystem is a directory of fake commands put first on PATH. Each fake
// appends its command line to calls.
type fakeSystem struct {
	dir, calls string
}

func newFakeSystem(t *testing.T, uid int, installed []string, sudoWorks bool) *fakeSystem {
	t.Helper()
	f := &fakeSystem{dir: t.TempDir()}
	f.calls = filepath.Join(f.dir, "calls")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte("#!/bin/sh\necho \""+name+" $*\" >> "+f.calls+"\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("id", "echo "+map[bool]string{true: "0", false: "1000"}[uid == 0]+"\n")
	// dpkg-query -W -f FORMAT PKG: "installed" for the installed ones, and
	// for any package apt-get installed since.
	write("dpkg-query", `for p in `+strings.Join(installed, " ")+` $(cat `+f.dir+`/apt-installed 2>/dev/null); do
  [ "$p" = "$4" ] && { printf installed; exit 0; }
done
echo "dpkg-query: no packages found matching $4" >&2; exit 1
`)
	write("apt-get", `for a in "$@"; do case "$a" in -*|install|update) ;; *) echo "$a" >> `+f.dir+`/apt-installed;; esac; done
`)
	sudo := "exit 1\n"
	if sudoWorks {
		sudo = `[ "$1" = -n ] && shift; [ "$1" = true ] && exit 0; exec "$@"` + "\n"
	}
	write("sudo", sudo)
	return f
}

func (f *fakeSystem) run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join("..", "tools", "debian-deps.sh"), args...)
	cmd.Env = append(os.Environ(), "PATH="+f.dir+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func (f *fakeSystem) called(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(f.calls)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func debianPackages(t *testing.T) []string {
	t.Helper()
	out, code := (&fakeSystem{}).run(t, "list")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, out)
	}
	return strings.Fields(out)
}

func TestDebianDeps(t *testing.T) {
	all := debianPackages(t)
	for _, want := range []string{"protobuf-compiler", "chromium", "prosody", "ngircd", "inspircd", "fonts-noto-color-emoji", "fonts-wqy-zenhei"} {
		if !strings.Contains(" "+strings.Join(all, " ")+" ", " "+want+" ") {
			t.Errorf("the list lacks %s: %v", want, all)
		}
	}
	// Everything but prosody and chromium is there.
	var some []string
	for _, p := range all {
		if p != "prosody" && p != "chromium" {
			some = append(some, p)
		}
	}

	t.Run("nothing missing: nothing run", func(t *testing.T) {
		f := newFakeSystem(t, 1000, all, false)
		if out, code := f.run(t); code != 0 || out != "" {
			t.Fatalf("exit %d, output %q", code, out)
		}
		if c := f.called(t); strings.Contains(c, "apt-get") || strings.Contains(c, "sudo") {
			t.Fatalf("ran %q", c)
		}
	})

	t.Run("not root, no sudo: stops at once with the command", func(t *testing.T) {
		f := newFakeSystem(t, 1000, some, false)
		out, code := f.run(t)
		if code != 1 {
			t.Fatalf("exit %d, want 1: %s", code, out)
		}
		want := "  sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium prosody\n"
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
		if c := f.called(t); strings.Contains(c, "apt-get") {
			t.Errorf("ran apt-get without the right to: %q", c)
		}
	})

	t.Run("root: installs what is missing", func(t *testing.T) {
		f := newFakeSystem(t, 0, some, false)
		if out, code := f.run(t); code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		c := f.called(t)
		if !strings.Contains(c, "apt-get -o DPkg::Lock::Timeout=300 -qq update") || !strings.Contains(c, "install -y --no-install-recommends chromium prosody\n") {
			t.Errorf("apt-get calls:\n%s", c)
		}
		if strings.Contains(c, "sudo") {
			t.Errorf("root used sudo: %q", c)
		}
	})

	t.Run("sudo without a password: installs through sudo", func(t *testing.T) {
		f := newFakeSystem(t, 1000, some, true)
		if out, code := f.run(t); code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		if c := f.called(t); !strings.Contains(c, "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get") || !strings.Contains(c, "chromium prosody\n") {
			t.Errorf("calls:\n%s", c)
		}
	})
}
