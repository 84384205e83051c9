//go:build readme

// The newcomer's path, verbatim: every shell block of README.md (```sh, and
// the `$ ` lines of ```console blocks) run in order in a fresh clone of this
// repository's HEAD, as a user on a fresh machine would run them, with what
// they print checked. `make test-readme` runs it.
//
// A block is annotated by an HTML comment right before it (invisible on
// GitHub), one or more directives separated by ";":
//
//	<!-- readme-test: skip: REASON -->   not run; listed, with its reason, as skipped
//	stdin "TEXT"     what the user types (Go string syntax)
//	tty              run in a pseudo-terminal, as on a terminal (Ctrl-D is sent once every want is seen)
//	runs             it keeps running (a server): stopped once every want is seen
//	want "TEXT"      the output must contain TEXT (repeatable)
//	with "CMD"       a command run in the background for the block (e.g. the NATS server it assumes)
//	check NAME       a check of what the user would see next (see checks below)
//	timeout DUR      longest the block may take (default 5m)
//
// A console block's `$ ` commands are run in a pseudo-terminal, each output
// compared with the lines after it: "…" in a line stands for any text, a
// line of its own "…" for any lines. A console block without a `$ ` line
// shows output only: it is listed as skipped. Blocks in README sections
// that others own and that carry no directive yet are listed in
// `unmarked`.
//
// It uses the default ports (NATS 4222, the web chat 8080) and the compose
// project botmesh, as the README does: it refuses to start if they are in
// use, and leaves nothing running, no container, network or volume.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

// directives say how to run one block.
type directives struct {
	skip    string
	stdin   string
	tty     bool
	runs    bool
	wants   []string
	with    []string
	checks  []string
	timeout time.Duration
	// For unmarked console blocks only: what varies from run to run that
	// the block shows as one run's values, and why. Digits match any
	// digits; /home/you, any home directory.
	vary string
}

// block is one shell block of the README.
type block struct {
	line    int    // of the opening fence
	lang    string // sh or console
	section string // the heading it is under
	text    string
	d       directives
	marked  bool // it has a readme-test comment
}

func (b block) name() string {
	return fmt.Sprintf("README.md:%d %s (%s)", b.line, b.lang, b.section)
}

// unmarked are blocks in sections others own that carry no directive yet:
// their section, their first line, how to run them and why. An entry that
// no longer matches a block fails the test (move it into the README).
var unmarked = []struct {
	section, first string
	d              directives
}{
	{"Web chat", "$ go run ./cmd/botmesh", directives{
		vary:   "the block shows one run's NATS port and /home/you for the home directory",
		checks: []string{"web-chat"},
	}},
	{"Web chat", "BOTMESH_WEB_TOKEN=$(cat /run/secrets/web_token) bin/gateway --inputs web --web_address 0.0.0.0:8080", directives{
		skip: "/run/secrets/web_token stands for a deployment's secret file; the gateway's web input is run by the compose blocks",
	}},
}

var readmeComment = regexp.MustCompile(`(?s)^<!--\s*readme-test:\s*(.*?)\s*-->$`)

// parseREADME returns the README's sh and console blocks.
func parseREADME(t *testing.T, text string) []block {
	t.Helper()
	lines := strings.Split(text, "\n")
	var blocks []block
	section := ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "#") {
			section = strings.TrimSpace(strings.TrimLeft(l, "#"))
			continue
		}
		trimmed := strings.TrimLeft(l, " ")
		if !strings.HasPrefix(trimmed, "```") {
			if strings.HasPrefix(strings.TrimSpace(l), "<!--") && strings.Contains(l, "readme-test") {
				// A directive must be right before a block.
				j := i
				for j < len(lines) && !strings.Contains(lines[j], "-->") {
					j++
				}
				if j+1 >= len(lines) || !strings.HasPrefix(strings.TrimLeft(lines[j+1], " "), "```") {
					t.Errorf("README.md:%d: a readme-test directive not right before a block", i+1)
				}
			}
			continue
		}
		indent := len(l) - len(trimmed)
		lang := strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))
		start := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, strings.TrimPrefix(lines[i], strings.Repeat(" ", indent)))
		}
		if lang != "sh" && lang != "console" {
			continue
		}
		b := block{line: start + 1, lang: lang, section: section, text: strings.Join(body, "\n") + "\n"}
		// The directive: the comment that ends on the line before.
		if start > 0 && strings.HasSuffix(strings.TrimSpace(lines[start-1]), "-->") {
			k := start - 1
			for k > 0 && !strings.Contains(lines[k], "<!--") {
				k--
			}
			comment := strings.TrimSpace(strings.Join(lines[k:start], "\n"))
			if m := readmeComment.FindStringSubmatch(comment); m != nil {
				d, err := parseDirectives(m[1])
				if err != nil {
					t.Fatalf("README.md:%d: %v", k+1, err)
				}
				b.d, b.marked = d, true
			}
		}
		blocks = append(blocks, b)
	}
	return blocks
}

func parseDirectives(s string) (directives, error) {
	d := directives{timeout: 5 * time.Minute}
	if reason, ok := strings.CutPrefix(s, "skip:"); ok {
		d.skip = strings.Join(strings.Fields(reason), " ")
		if d.skip == "" {
			return d, errors.New("skip without a reason")
		}
		return d, nil
	}
	for _, part := range splitDirectives(s) {
		key, arg, _ := strings.Cut(strings.TrimSpace(part), " ")
		arg = strings.TrimSpace(arg)
		str := func() (string, error) {
			v, err := strconv.Unquote(arg)
			if err != nil {
				return "", fmt.Errorf("%s: %s is not a quoted string", key, arg)
			}
			return v, nil
		}
		var err error
		switch key {
		case "stdin":
			d.stdin, err = str()
		case "want":
			var v string
			v, err = str()
			d.wants = append(d.wants, v)
		case "with":
			var v string
			v, err = str()
			d.with = append(d.with, v)
		case "tty":
			d.tty = true
		case "runs":
			d.runs = true
		case "check":
			d.checks = append(d.checks, arg)
		case "timeout":
			d.timeout, err = time.ParseDuration(arg)
		default:
			err = fmt.Errorf("unknown directive %q", key)
		}
		if err != nil {
			return d, err
		}
	}
	return d, nil
}

// splitDirectives splits at the semicolons outside quoted strings.
func splitDirectives(s string) []string {
	var parts []string
	var cur strings.Builder
	inQuote, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case r == '\\' && inQuote:
			escaped = true
		case r == '"':
			inQuote = !inQuote
		case r == ';' && !inQuote:
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	if strings.TrimSpace(cur.String()) != "" {
		parts = append(parts, cur.String())
	}
	return parts
}

// readme is the fresh clone the blocks run in, and their environment.
type readme struct {
	dir    string            // the clone
	env    []string          // the user's environment
	docker bool              // a block used the compose environment
	images map[string]string // botmesh/*:dev images before the test: name → id
	made   map[string]bool   // ids of the botmesh/*:dev images seen after each block
}

func TestREADME(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	head := strings.TrimSpace(run(t, root, "git", "rev-parse", "HEAD"))
	if dirty := strings.TrimSpace(run(t, root, "git", "status", "--porcelain", "--untracked-files=no")); dirty != "" {
		t.Logf("note: the checkout has uncommitted changes; this runs the README and code of HEAD %s only", head)
	}
	preflight(t)
	before := devImages(t)

	tmp := t.TempDir()
	r := &readme{dir: filepath.Join(tmp, "botmesh"), images: before, made: map[string]bool{}}
	run(t, tmp, "git", "clone", "-q", root, r.dir)
	if got := strings.TrimSpace(run(t, r.dir, "git", "rev-parse", "HEAD")); got != head {
		t.Fatalf("the clone is at %s, want HEAD %s", got, head)
	}
	r.env = userEnv(t, tmp)
	t.Logf("fresh clone of %s at %s in %s", root, head[:12], r.dir)
	t.Cleanup(func() { r.cleanup(t) })

	text, err := os.ReadFile(filepath.Join(r.dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseREADME(t, string(text))
	for _, u := range unmarked {
		found := false
		for i, b := range blocks {
			if b.section == u.section && strings.SplitN(b.text, "\n", 2)[0] == u.first {
				if b.marked {
					t.Errorf("%s has a directive now: remove its entry from unmarked", b.name())
				}
				u.d.timeout = 5 * time.Minute
				blocks[i].d, found = u.d, true
			}
		}
		if !found {
			t.Errorf("unmarked: no block %q in section %q any more", u.first, u.section)
		}
	}
	for i := range blocks {
		if blocks[i].d.timeout == 0 {
			blocks[i].d.timeout = 5 * time.Minute
		}
	}

	type result struct {
		name, outcome string
	}
	var results []result
	failed := ""
	start := time.Now()
	for _, b := range blocks {
		name := b.name()
		ok := t.Run(fmt.Sprintf("line %d %s", b.line, b.lang), func(t *testing.T) {
			switch {
			case b.d.skip != "":
				results = append(results, result{name, "skipped: " + b.d.skip})
				t.Skip(b.d.skip)
			case failed != "":
				results = append(results, result{name, "not run: " + failed + " failed"})
				t.Skipf("not run: %s failed before it", failed)
			case b.lang == "console" && !strings.HasPrefix(b.text, "$ "):
				const why = "output only: no $ line, no command to run"
				results = append(results, result{name, "skipped: " + why})
				t.Skip(why)
			}
			began := time.Now()
			t.Logf("%s:\n%s", name, indent(b.text))
			if b.lang == "console" {
				r.runConsole(t, b)
			} else {
				r.runSh(t, b)
			}
			r.noteImages(t)
			outcome := fmt.Sprintf("ran in %s", time.Since(began).Round(100*time.Millisecond))
			if b.d.vary != "" {
				outcome += "; digits and /home/you vary: " + b.d.vary
			}
			if t.Failed() {
				outcome = "FAILED after " + time.Since(began).Round(100*time.Millisecond).String()
			}
			results = append(results, result{name, outcome})
		})
		if !ok && failed == "" {
			failed = name
		}
	}
	var sb strings.Builder
	skipped := 0
	for _, res := range results {
		fmt.Fprintf(&sb, "  %-60s %s\n", res.name, res.outcome)
		if strings.HasPrefix(res.outcome, "skipped") {
			skipped++
		}
	}
	t.Logf("README blocks (%d, %d skipped, in %s):\n%s", len(results), skipped, time.Since(start).Round(time.Second), sb.String())
}

// preflight refuses to start where the README's commands would collide
// with something already running.
func preflight(t *testing.T) {
	t.Helper()
	for _, port := range []string{"4222", "8080"} {
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatalf("port %s is in use: the README's commands need it (NATS 4222, the web chat 8080); stop what holds it", port)
		}
		l.Close()
	}
	if out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=botmesh").CombinedOutput(); err != nil {
		t.Fatalf("docker: %v %s", err, out)
	} else if len(bytes.TrimSpace(out)) > 0 {
		t.Fatal("a compose environment of the project botmesh exists (make up ran here?): make down first")
	}
}

// userEnv is the environment of a newcomer: a home of their own (the
// all-in-one's credentials, nats-server's store in TMPDIR), the Go caches
// and proxy of this machine, nothing of botmesh's or of make's.
func userEnv(t *testing.T, tmp string) []string {
	t.Helper()
	home, tmpdir := filepath.Join(tmp, "home"), filepath.Join(tmp, "tmp")
	for _, d := range []string{home, tmpdir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"HOME=" + home, "TMPDIR=" + tmpdir, "LANG=C.UTF-8", "USER=" + os.Getenv("USER"), "LOGNAME=" + os.Getenv("LOGNAME"), "PATH=" + os.Getenv("PATH")}
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, v+"="+strings.TrimSpace(string(out)))
	}
	for _, v := range []string{"GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GOINSECURE", "GOTOOLCHAIN", "GOFLAGS", "DOCKER_HOST", "DOCKER_CONFIG", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} {
		if val, ok := os.LookupEnv(v); ok {
			env = append(env, v+"="+val)
		}
	}
	return env
}

// cleanup leaves nothing of the README's run: the compose project, the
// image of the user's own command.
func (r *readme) cleanup(t *testing.T) {
	if !r.docker {
		return
	}
	cmd := exec.Command("make", "down")
	cmd.Dir, cmd.Env = r.dir, r.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("make down at the end: %v\n%s", err, out)
	}
	if left := projectLeft(t); left != "" {
		t.Errorf("left behind: %s", left)
	}
	// The images make up and make image built: removed unless they were
	// here before (then make up replaced them, as it does for a user).
	var built []string
	for name, id := range devImages(t) {
		switch old, ok := r.images[name]; {
		case !ok:
			built = append(built, name)
		case old != id:
			t.Logf("%s was %s before this test; make up rebuilt it (the old image is untagged now)", name, old)
		}
	}
	if len(built) > 0 {
		if out, err := exec.Command("docker", append([]string{"rmi"}, built...)...).CombinedOutput(); err != nil {
			t.Errorf("docker rmi %v: %v\n%s", built, err, out)
		}
	}
	// And those a later build untagged (e.g. make up after go.work changed).
	for id := range r.made {
		if tags, err := exec.Command("docker", "image", "inspect", "--format", "{{len .RepoTags}}", id).Output(); err == nil && strings.TrimSpace(string(tags)) == "0" {
			if out, err := exec.Command("docker", "rmi", id).CombinedOutput(); err != nil {
				t.Errorf("docker rmi %s: %v\n%s", id, err, out)
			}
		}
	}
}

// noteImages remembers the botmesh/*:dev images the blocks made so far.
func (r *readme) noteImages(t *testing.T) {
	for name, id := range devImages(t) {
		if r.images[name] != id {
			r.made[id] = true
		}
	}
}

// devImages returns the botmesh/*:dev images: name → id.
func devImages(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("docker", "images", "--filter", "reference=botmesh/*:dev", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").Output()
	if err != nil {
		t.Fatalf("docker images: %v", err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if name, id, ok := strings.Cut(l, " "); ok {
			m[name] = id
		}
	}
	return m
}

// projectLeft lists the containers, networks and volumes of the compose
// project botmesh.
func projectLeft(t *testing.T) string {
	t.Helper()
	var left []string
	for _, kind := range []string{"container", "network", "volume"} {
		args := []string{kind, "ls", "-q", "--filter", "label=com.docker.compose.project=botmesh"}
		if kind == "container" {
			args = []string{"ps", "-aq", "--filter", "label=com.docker.compose.project=botmesh"}
		}
		out, err := exec.Command("docker", args...).Output()
		if err != nil {
			t.Fatalf("docker %v: %v", args, err)
		}
		for _, id := range strings.Fields(string(out)) {
			left = append(left, kind+" "+id)
		}
	}
	return strings.Join(left, ", ")
}

// runSh runs an sh block with bash, as if typed line by line into a shell
// that stops at the first failing command.
func (r *readme) runSh(t *testing.T, b block) {
	for _, w := range b.d.with {
		bg := r.start(t, w, "", false)
		t.Cleanup(func() { bg.stop(t) })
	}
	if strings.Contains(b.text, "make up") || strings.Contains(b.text, "make down") {
		r.docker = true
	}
	p := r.start(t, "set -eo pipefail\n"+b.text, b.d.stdin, b.d.tty)
	defer p.stop(t)
	// A block that keeps running (a server, or a program reading the
	// terminal) is done once every want is seen.
	stopWhenWanted := b.d.runs || b.d.tty
	deadline := time.After(b.d.timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-p.done:
			break wait
		case <-deadline:
			t.Fatalf("still running after %s; it printed:\n%s", b.d.timeout, indent(p.output()))
		case <-tick.C:
		}
		if stopWhenWanted && len(missing(p.output(), b.d.wants)) == 0 {
			break wait
		}
	}
	stoppedByUs, checked := false, false
	if !p.exited() {
		// What the user sees next, while it runs; then it is ended as the
		// user would: Ctrl-D on a terminal, else Ctrl-C.
		r.checks(t, b, p.output())
		checked = true
		if b.d.tty {
			p.typeText("\x04")
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("did not quit within 30s of Ctrl-D; it printed:\n%s", indent(p.output()))
			}
		} else {
			p.stop(t)
			stoppedByUs = true
		}
	}
	out := p.output()
	if p.err != nil && !stoppedByUs {
		t.Fatalf("failed (%v); it printed:\n%s", p.err, indent(out))
	}
	if m := missing(out, b.d.wants); len(m) > 0 {
		t.Fatalf("the output lacks %q; it printed:\n%s", m, indent(out))
	}
	if !checked {
		r.checks(t, b, out)
	}
	t.Logf("it printed:\n%s", indent(out))
}

// runConsole runs each "$ " command of a console block in a terminal and
// compares what it prints with the lines after it.
func (r *readme) runConsole(t *testing.T, b block) {
	type step struct {
		cmd  string
		want []string
	}
	var steps []step
	for _, l := range strings.Split(strings.TrimSuffix(b.text, "\n"), "\n") {
		if c, ok := strings.CutPrefix(l, "$ "); ok {
			steps = append(steps, step{cmd: c})
			continue
		}
		if len(steps) == 0 {
			t.Fatalf("output before the first $ line: %q", l)
		}
		steps[len(steps)-1].want = append(steps[len(steps)-1].want, l)
	}
	for _, s := range steps {
		match := consoleMatcher(s.want, b.d.vary != "")
		p := r.start(t, s.cmd, "", true)
		deadline := time.After(b.d.timeout)
		sentEOF := false
	wait:
		for {
			select {
			case <-p.done:
				break wait
			case <-deadline:
				p.stop(t)
				t.Fatalf("$ %s: still running after %s; it printed:\n%s\nwant:\n%s", s.cmd, b.d.timeout, indent(p.output()), indent(strings.Join(s.want, "\n")))
			case <-time.After(500 * time.Millisecond):
			}
			if !sentEOF && match(normalize(p.output())) {
				// Everything shown is there: what the user does next, then
				// Ctrl-D (a command that reads the terminal ends there).
				time.Sleep(time.Second)
				if p.exited() {
					break wait
				}
				r.checks(t, b, p.output())
				p.typeText("\x04")
				sentEOF = true
				select {
				case <-p.done:
				case <-time.After(30 * time.Second):
					p.stop(t)
					t.Fatalf("$ %s: did not quit within 30s of Ctrl-D; it printed:\n%s", s.cmd, indent(p.output()))
				}
				break wait
			}
		}
		p.stop(t)
		got := normalize(p.output())
		if p.err != nil {
			t.Fatalf("$ %s: %v; it printed:\n%s", s.cmd, p.err, indent(got))
		}
		if !match(got) {
			t.Fatalf("$ %s printed:\n%s\nthe README shows:\n%s", s.cmd, indent(got), indent(strings.Join(s.want, "\n")))
		}
		if !sentEOF {
			r.checks(t, b, got)
		}
		t.Logf("$ %s printed:\n%s", s.cmd, indent(got))
	}
}

// consoleMatcher returns whether an output is what the README shows: "…"
// in a line is any text, a line "…" any lines. With vary, digits match any
// digits and /home/you any directory.
func consoleMatcher(want []string, vary bool) func(string) bool {
	var re strings.Builder
	re.WriteString(`(?s)\A`)
	for _, l := range want {
		if strings.TrimSpace(l) == "…" {
			re.WriteString(`(?:[^\n]*\n)*?`)
			continue
		}
		if vary {
			l = strings.ReplaceAll(l, "/home/you", "…")
		}
		for i, part := range strings.Split(strings.TrimRight(l, " "), "…") {
			if i > 0 {
				re.WriteString(`[^\n]*?`)
			}
			q := regexp.QuoteMeta(part)
			if vary {
				q = regexp.MustCompile(`[0-9]+`).ReplaceAllString(q, `[0-9]+`)
			}
			re.WriteString(q)
		}
		re.WriteString(`\n`)
	}
	re.WriteString(`\z`)
	rx := regexp.MustCompile(re.String())
	return func(out string) bool { return rx.MatchString(out) }
}

// normalize turns a terminal's output into lines: \r\n to \n, no
// trailing spaces, one final newline.
func normalize(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		lines = append(lines, strings.TrimRight(l, " \t"))
	}
	out := strings.TrimRight(strings.Join(lines, "\n"), "\n")
	if out == "" {
		return ""
	}
	return out + "\n"
}

func missing(out string, wants []string) []string {
	var m []string
	for _, w := range wants {
		if !strings.Contains(normalize(out), w) {
			m = append(m, w)
		}
	}
	return m
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// run runs a command of the test's own (not the README's).
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// proc is a running block: bash in its own process group (its own session
// in a terminal), and whatever it started in the background.
type proc struct {
	cmd   *exec.Cmd
	pgid  int
	input *os.File // the terminal (tty) or nil
	done  chan struct{}
	err   error

	mu  sync.Mutex
	out bytes.Buffer
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) typeText(s string) {
	if p.input != nil {
		_, _ = p.input.WriteString(s)
	}
}

// start runs script with bash in the clone, with stdin (typed into the
// terminal with tty).
func (r *readme) start(t *testing.T, script, stdin string, tty bool) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command("bash", "-c", script)
	p.cmd.Dir = r.dir
	p.cmd.Env = append(slices.Clone(r.env), "TERM=dumb")
	var outR *os.File
	if tty {
		master, slave, err := openPTY()
		if err != nil {
			t.Fatal(err)
		}
		p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = slave, slave, slave
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		p.cmd.Env = append(slices.Clone(r.env), "TERM=xterm")
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		slave.Close()
		outR, p.input = master, master
		if stdin != "" {
			p.typeText(stdin)
		}
	} else {
		inR, inW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		var outW *os.File
		outR, outW, err = os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = inR, outW, outW
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		inR.Close()
		outW.Close()
		go func() {
			_, _ = io.WriteString(inW, stdin)
			inW.Close()
		}()
	}
	p.pgid = p.cmd.Process.Pid
	go func() {
		br := bufio.NewReader(outR)
		buf := make([]byte, 4096)
		for {
			n, err := br.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return // EOF, or EIO once the terminal has no process
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// stop ends what the block left running: SIGTERM to its process group,
// then SIGKILL; it fails the test if a process of it is still alive.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		_ = syscall.Kill(-p.pgid, sig)
		for i := 0; i < 50 && len(groupAlive(p.pgid)) > 0; i++ {
			time.Sleep(200 * time.Millisecond)
		}
		if len(groupAlive(p.pgid)) == 0 {
			break
		}
	}
	if alive := groupAlive(p.pgid); len(alive) > 0 {
		t.Errorf("processes of the block still alive after SIGKILL: %v", alive)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("bash did not end")
	}
	if p.input != nil {
		p.input.Close()
	}
}

// groupAlive lists the live (not zombie) processes of process group pgid.
func groupAlive(pgid int) []string {
	entries, _ := os.ReadDir("/proc")
	var alive []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if f[2] == strconv.Itoa(pgid) {
			alive = append(alive, e.Name()+" "+s[strings.IndexByte(s, '(')+1:i])
		}
	}
	return alive
}

// openPTY opens a pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		master.Close()
		return nil, nil, e
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		master.Close()
		return nil, nil, e
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// checks runs the block's checks: what the user would see next.
func (r *readme) checks(t *testing.T, b block, out string) {
	t.Helper()
	for _, name := range b.d.checks {
		c, ok := readmeChecks[name]
		if !ok {
			t.Fatalf("no check %q", name)
		}
		c(t, r, normalize(out))
	}
}

// readmeChecks are what a user sees after a block, beyond its output.
var readmeChecks = map[string]func(t *testing.T, r *readme, out string){
	// The all-in-one on a terminal serves the web chat where it says.
	"web-chat": func(t *testing.T, r *readme, out string) {
		if !strings.Contains(out, "Web chat: http://127.0.0.1:8080/\n") {
			t.Fatalf("no web chat address printed:\n%s", indent(out))
		}
		page(t, "http://127.0.0.1:8080/")
		if got := chat(t, "8080", "", "ping"); got != "pong" {
			t.Fatalf("the web chat answered ping with %q", got)
		}
	},
	// make up said where the web chat is and how to read its token; both
	// work, through the front door; botctl answered.
	"environment-up": func(t *testing.T, r *readme, out string) {
		checkUp(t, r, out)
		if !strings.Contains(out, "\npong\n5 services:\ngo.micro.bot.echo (1 node)\ngo.micro.bot.note (1 node)\ngo.micro.bot.query (1 node)\ngo.micro.bot.registry (1 node)\ngreeter (1 node)\n") {
			t.Fatalf("botctl did not answer pong and the 5 services:\n%s", indent(out))
		}
	},
	// Scaled: 3 routers and 2 web gateways, behind the same front door,
	// which found both and sends new browsers to each.
	"scaled": func(t *testing.T, r *readme, out string) {
		token := checkUp(t, r, out)
		for svc, n := range map[string]int{"router": 3, "gateway-web": 2, "frontdoor": 1} {
			if got := len(serviceContainers(t, svc)); got != n {
				t.Errorf("%d containers of %s, want %d", got, svc, n)
			}
		}
		logs := frontdoorLogs(t)
		if !strings.Contains(logs, `"count":2`) {
			t.Errorf("the front door did not find 2 web gateways:\n%s", logs)
		}
		for i := 0; i < 4; i++ {
			if got := chat(t, "8080", token, "ping"); got != "pong" {
				t.Fatalf("browser %d: ping answered %q", i, got)
			}
		}
	},
	// Nothing of the project is left: containers, networks, volumes.
	"nothing-left": func(t *testing.T, r *readme, out string) {
		if left := projectLeft(t); left != "" {
			t.Fatalf("left behind after make down: %s", left)
		}
		if _, err := os.Stat(filepath.Join(r.dir, "botctl.creds")); err == nil {
			t.Error("botctl.creds is still there after make down")
		}
	},
	// help lists the new command.
	"mycmd-in-help": func(t *testing.T, r *readme, out string) {
		got := botctl(t, r, "help")
		if !strings.Contains(got, "\nmycmd [text] - Returns the [text]\n") {
			t.Fatalf("help does not list mycmd:\n%s", indent(got))
		}
	},
	// The removed command is soon gone (its service deregistered on
	// SIGTERM; each router drops it and says when it last saw it).
	"mycmd-gone": func(t *testing.T, r *readme, out string) {
		if n := len(serviceContainers(t, "mycmd")); n != 0 {
			t.Fatalf("%d mycmd containers left", n)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := botctl(t, r, "mycmd hi")
			if strings.HasPrefix(got, `"mycmd" is gone: go.micro.bot.mycmd was last seen `) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("mycmd still answers 20s after its removal: %q", got)
			}
			time.Sleep(time.Second)
		}
	},
}

// checkUp checks what make up printed, and the web chat there with the
// token read as it said; it returns the token.
func checkUp(t *testing.T, r *readme, out string) string {
	t.Helper()
	const where = "  web chat: http://127.0.0.1:8080/   its token: "
	i := strings.Index(out, where)
	if i < 0 {
		t.Fatalf("make up did not say where the web chat is:\n%s", indent(out))
	}
	how, _, _ := strings.Cut(out[i+len(where):], "\n")
	cmd := exec.Command("bash", "-c", how)
	cmd.Dir, cmd.Env = r.dir, r.env
	tok, err := cmd.Output()
	if err != nil || len(bytes.TrimSpace(tok)) == 0 {
		t.Fatalf("the token as make up says (%s): %v %q", how, err, tok)
	}
	token := strings.TrimSpace(string(tok))
	page(t, "http://127.0.0.1:8080/")
	if got := chat(t, "8080", token, "echo through the front door"); got != "through the front door" {
		t.Fatalf("the web chat answered %q", got)
	}
	return token
}

func page(t *testing.T, url string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	rsp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer rsp.Body.Close()
	body, _ := io.ReadAll(rsp.Body)
	if rsp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("<html")) {
		t.Fatalf("GET %s: %s\n%.300s", url, rsp.Status, body)
	}
}

// chat opens a web chat session as a browser would and returns the final
// reply to text.
func chat(t *testing.T, port, token, text string) string {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"botmesh.web.v1"}, HandshakeTimeout: 10 * time.Second}
	c, _, err := d.Dial("ws://127.0.0.1:"+port+"/ws", http.Header{"Origin": {"http://127.0.0.1:" + port}})
	if err != nil {
		t.Fatalf("web chat on %s: %v", port, err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(40 * time.Second))
	hello := map[string]any{"type": "hello", "conversation": fmt.Sprintf("readme%d", time.Now().UnixNano())}
	if token != "" {
		hello["token"] = token
	}
	if err := c.WriteJSON(hello); err != nil {
		t.Fatal(err)
	}
	for {
		var f struct {
			Type, Kind, Text, Code, Message string
			InReplyTo                       string `json:"in_reply_to"`
		}
		if err := c.ReadJSON(&f); err != nil {
			t.Fatalf("web chat: %v", err)
		}
		switch {
		case f.Type == "welcome":
			if err := c.WriteJSON(map[string]any{"type": "message", "id": "m1", "text": text}); err != nil {
				t.Fatal(err)
			}
		case f.Type == "error":
			t.Fatalf("web chat error %s: %s", f.Code, f.Message)
		case f.Type == "reply" && f.InReplyTo == "m1" && f.Kind != "progress":
			return f.Text
		}
	}
}

func botctl(t *testing.T, r *readme, msg string) string {
	t.Helper()
	cmd := exec.Command("bin/botctl", "--nats_creds", "botctl.creds", msg)
	cmd.Dir, cmd.Env = r.dir, r.env
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("botctl %q: %v\n%s", msg, err, out)
	}
	return string(out)
}

func serviceContainers(t *testing.T, svc string) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-q", "--filter", "label=com.docker.compose.project=botmesh", "--filter", "label=com.docker.compose.service="+svc).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))
}

func frontdoorLogs(t *testing.T) string {
	t.Helper()
	ids := serviceContainers(t, "frontdoor")
	if len(ids) != 1 {
		t.Fatalf("front door containers: %v", ids)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "logs", ids[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("docker logs: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		var rec struct{ Msg string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "web gateways" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// How console blocks are compared, and how directives are read.
func TestREADMEConsoleMatcher(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string
		vary bool
		out  string
		ok   bool
	}{
		{"exact", []string{"pong"}, false, "pong\n", true},
		{"a line more", []string{"pong"}, false, "pong\nextra\n", false},
		{"a line less", []string{"pong", "hi"}, false, "pong\n", false},
		{"… in a line", []string{"• greeter-…: ok (…)"}, false, "• greeter-e03e: ok (740µs)\n", true},
		{"… stays in its line", []string{"a…b"}, false, "a\nb\n", false},
		{"a line …", []string{"first", "…", "last"}, false, "first\nx\ny\nlast\n", true},
		{"digits are digits", []string{"port 40183"}, false, "port 35831\n", false},
		{"digits vary", []string{"port 40183"}, true, "port 35831\n", true},
		{"digits vary, words do not", []string{"port 40183"}, true, "dock 35831\n", false},
		{"the home directory varies", []string{"in /home/you/.config/x"}, true, "in /tmp/h/.config/x\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := consoleMatcher(tc.want, tc.vary)(normalize(tc.out)); got != tc.ok {
				t.Errorf("%q against %q: %v, want %v", tc.out, tc.want, got, tc.ok)
			}
		})
	}
}

func TestREADMEDirectives(t *testing.T) {
	d, err := parseDirectives(`stdin "ping\n"; want "a; b"; want "pong"; check scaled; runs; timeout 1m`)
	if err != nil {
		t.Fatal(err)
	}
	if d.stdin != "ping\n" || !slices.Equal(d.wants, []string{"a; b", "pong"}) || !slices.Equal(d.checks, []string{"scaled"}) || !d.runs || d.timeout != time.Minute {
		t.Errorf("parsed %+v", d)
	}
	if d, err := parseDirectives("skip: needs  a Slack\n workspace"); err != nil || d.skip != "needs a Slack workspace" {
		t.Errorf("skip: %+v %v", d, err)
	}
	for _, bad := range []string{"skip:", "want pong", "colour blue", "timeout soon"} {
		if _, err := parseDirectives(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	blocks := parseREADME(t, "# A\n<!-- readme-test: want \"x\" -->\n```sh\necho x\n```\n\n```go\nx := 1\n```\n## B\n```console\n$ echo y\ny\n```\n")
	if len(blocks) != 2 || blocks[0].section != "A" || !blocks[0].marked || blocks[0].text != "echo x\n" || blocks[1].section != "B" || blocks[1].marked || blocks[1].line != 11 {
		t.Errorf("blocks %+v", blocks)
	}
}
