package peerbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/botmesh/botmesh/internal/bench"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/mesh"
)

// Bot names, as the report shows them.
const (
	Botmesh = "botmesh"
	Errbot  = "Errbot"
)

// bot is a running bot under test: one process, logged in to Prosody as
// account.
type bot struct {
	name    string
	account string // its XMPP localpart
	cmd     *exec.Cmd
	log     string
	done    chan struct{}
	err     error
	stopped []func() // what else stop stops, after the process
}

// start runs binary with args as the bot name, its output in dir/<log>.
func start(name, account, dir, binary string, args ...string) (*bot, error) {
	logFile := filepath.Join(dir, strings.ToLower(name)+".log")
	f, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("peerbench: %w", err)
	}
	defer f.Close()
	b := &bot{name: name, account: account, log: logFile, done: make(chan struct{})}
	b.cmd = exec.Command(binary, args...)
	b.cmd.Dir = dir
	b.cmd.Stdout, b.cmd.Stderr = f, f
	// The bot dies with the bench, even when the bench is killed.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("peerbench: start %s: %w", name, err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	return b, nil
}

// pid is the bot's process, whose CPU and memory are measured.
func (b *bot) pid() int { return b.cmd.Process.Pid }

// exited says how the bot ended, if it did, with the end of its log.
func (b *bot) exited() error {
	select {
	case <-b.done:
		return fmt.Errorf("%s exited (%v); its log ends:\n%s", b.name, b.err, bench.Tail(b.log, 3000))
	default:
		return nil
	}
}

// stop stops the bot (SIGTERM, SIGKILL after 10 s) and what it started.
func (b *bot) stop() {
	select {
	case <-b.done:
	default:
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	}
	for i := len(b.stopped) - 1; i >= 0; i-- {
		b.stopped[i]()
	}
}

// xmppServer is what a bot needs to log in.
type xmppServer struct {
	addr     string // 127.0.0.1:PORT
	caFile   string
	password string // every account's
	pid      int    // Prosody's process
}

// startBotmesh runs the all-in-one (bin/botmesh) with its XMPP input as
// account, and the bench's slow command service joined to its embedded
// NATS server, as a team adds a command: a go-micro service of its own
// (here in the bench's process, so its CPU is not the all-in-one's).
func startBotmesh(ctx context.Context, cfg Config, srv xmppServer, dir string) (*bot, error) {
	pwFile := filepath.Join(dir, "xmpp-password")
	if err := os.WriteFile(pwFile, []byte(srv.password), 0o600); err != nil {
		return nil, fmt.Errorf("peerbench: %w", err)
	}
	port, err := bench.FreePort()
	if err != nil {
		return nil, err
	}
	creds := filepath.Join(dir, "nats.creds")
	b, err := start(Botmesh, "botmesh", dir, filepath.Join(cfg.Bin, "botmesh"),
		"--inputs", "xmpp",
		"--xmpp_jid", "botmesh@localhost",
		"--xmpp_password_file", pwFile,
		"--xmpp_server", srv.addr,
		"--xmpp_ca_file", srv.caFile,
		"--nats_port", strconv.Itoa(port),
		"--creds_file", creds,
		"--data_dir", filepath.Join(dir, "data"),
		"--no_demo",
	)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("peerbench: %s/botmesh not found: run `make build` first, or pass --bin", cfg.Bin)
		}
		return nil, err
	}
	// The credentials file appears once the embedded server is up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(creds); err == nil {
			break
		}
		if err := b.exited(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("peerbench: botmesh wrote no credentials file within 30s; its log ends:\n%s", bench.Tail(b.log, 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	mcfg := mesh.DefaultConfig()
	mcfg.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	mcfg.Auth.Creds = creds
	mcfg.LANWait = 0
	m, err := mesh.Connect(ctx, mcfg, mesh.WithLogger(discard))
	if err != nil {
		b.stop()
		return nil, fmt.Errorf("peerbench: slow command: %w", err)
	}
	svc, err := command.New(m, "slow", slowCommand{delay: cfg.Slow})
	if err == nil {
		err = svc.Start()
	}
	if err != nil {
		b.stop()
		_ = m.Close()
		return nil, fmt.Errorf("peerbench: slow command: %w", err)
	}
	b.stopped = append(b.stopped, func() { _ = m.Close() }, func() { _ = svc.Stop() })
	return b, nil
}

// slowCommand answers "slow TEXT" with TEXT after delay, like the Errbot
// plugin's slow.
type slowCommand struct{ delay time.Duration }

func (slowCommand) Help(_ context.Context, _ *chatopsv1.HelpRequest, rsp *chatopsv1.HelpResponse) error {
	rsp.Usage = "slow [text]"
	rsp.Description = "Returns the [text] after a pause (peerbench)"
	return nil
}

func (c slowCommand) Exec(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	select {
	case <-time.After(c.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	rsp.Result = []byte(strings.Join(req.Args[1:], " "))
	return nil
}

// errbotConfig is Errbot's config.py. BOT_ASYNC is off unless asked
// for: with it on, a reply over XMPP waits for the next incoming stanza
// (errbot#1598, #1516). BOT_PREFIX_OPTIONAL_ON_CHAT lets a direct message be a command
// without the prefix, as with botmesh, so both get the same text. Only
// the core plugins that serve a command are loaded (VersionChecker would
// reach for the internet); echo is Errbot's own (core plugin Utils).
const errbotConfig = `# generated by peerbench
import logging
BACKEND = "XMPP"
BOT_DATA_DIR = %[1]q
BOT_EXTRA_PLUGIN_DIR = %[2]q
BOT_LOG_FILE = %[3]q
BOT_LOG_LEVEL = logging.WARNING
BOT_IDENTITY = {"username": "errbot@localhost", "password": %[4]q, "server": ("127.0.0.1", %[5]d)}
XMPP_CA_CERT_FILE = %[6]q
BOT_ADMINS = ("admin@localhost",)
BOT_PREFIX = "!"
BOT_PREFIX_OPTIONAL_ON_CHAT = True
BOT_ASYNC = %[7]s
CORE_PLUGINS = ("ACLs", "CommandNotFoundFilter", "Help", "Health", "Plugins", "Utils")
`

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// errbotPlugin is the plugin with the slow command.
const errbotPlugin = `from time import sleep

from errbot import BotPlugin, botcmd


class Peer(BotPlugin):
    """peerbench's commands."""

    @botcmd
    def slow(self, msg, args):
        """Returns the text after a pause."""
        sleep(%[1]g)
        return args
`

const errbotPlug = `[Core]
Name = Peer
Module = peer

[Documentation]
Description = peerbench's commands

[Python]
Version = 3
`

// errbotMissing says why Errbot cannot run here, or returns "".
func errbotMissing(ctx context.Context, python string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", "import errbot, slixmpp").CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Sprintf("Errbot was not found (%s cannot import errbot and slixmpp: %s); install it with `apt-get install errbot python3-slixmpp`", python, msg)
	}
	return ""
}

// startErrbot writes Errbot's configuration and plugin into dir and runs
// it with python.
func startErrbot(cfg Config, srv xmppServer, dir string) (*bot, error) {
	host, portText, _ := strings.Cut(srv.addr, ":")
	port, err := strconv.Atoi(portText)
	if err != nil || host != "127.0.0.1" {
		return nil, fmt.Errorf("peerbench: bad Prosody address %q", srv.addr)
	}
	plugins := filepath.Join(dir, "plugins", "peer")
	data := filepath.Join(dir, "data")
	for _, d := range []string{plugins, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("peerbench: %w", err)
		}
	}
	files := map[string]string{
		filepath.Join(dir, "config.py"):     fmt.Sprintf(errbotConfig, data, filepath.Dir(plugins), filepath.Join(dir, "errbot-internal.log"), srv.password, port, srv.caFile, pyBool(cfg.ErrbotAsync)),
		filepath.Join(plugins, "peer.py"):   fmt.Sprintf(errbotPlugin, cfg.Slow.Seconds()),
		filepath.Join(plugins, "peer.plug"): errbotPlug,
	}
	for name, text := range files {
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			return nil, fmt.Errorf("peerbench: %w", err)
		}
	}
	return start(Errbot, "errbot", dir, cfg.Python, "-m", "errbot.cli", "-c", filepath.Join(dir, "config.py"))
}
