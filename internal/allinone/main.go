package allinone

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/mail"
	"github.com/botmesh/botmesh/gateway/adapter/shell"
	"github.com/botmesh/botmesh/gateway/adapter/web"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/router/ratelimit"
	"github.com/botmesh/botmesh/sdk/admin"
	"github.com/botmesh/botmesh/sdk/boot"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/natsconn"
	"golang.org/x/term"
)

// Main parses args (flags, each also read from BOTMESH_<FLAG>) and runs the
// all-in-one with the given standard streams. It returns flag.ErrHelp after
// printing usage for -h.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("botmesh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := Config{Router: router.DefaultConfig(), Gateway: gateway.DefaultConfig(), NATSHost: "127.0.0.1", NATSPort: -1}
	fs.StringVar(&cfg.NATSHost, "nats_host", cfg.NATSHost, "address the embedded NATS server listens on")
	fs.IntVar(&cfg.NATSPort, "nats_port", cfg.NATSPort, "port of the embedded NATS server (-1: any free port)")
	defaultCreds, credsErr := natsconn.DefaultCredsFile()
	fs.StringVar(&cfg.CredsFile, "creds_file", defaultCreds, "where botmesh writes the credentials of its embedded NATS server (mode 0600), for botctl and parts on other hosts (--nats_creds)")
	defaultData, dataErr := DefaultDataDir()
	fs.StringVar(&cfg.DataDir, "data_dir", defaultData, "where the embedded NATS server keeps its data (command services' memory, schedules, audit records) across restarts; one botmesh at a time uses it (empty: a temporary directory, removed at exit)")
	fs.BoolVar(&cfg.NoDemo, "no_demo", false, "do not run the demo service greeter")
	inputs := fs.String("inputs", "", "comma-separated inputs to run: "+strings.Join(gateway.Inputs().Names(), ", ")+" (default: shell,web on a terminal, shell when stdin is piped)")
	// One local user: no rate limits unless asked for.
	cfg.Router.RateLimits = ratelimit.Config{}
	cfg.Router.RegisterFlags(fs)
	policyFile := fs.String("policy", "", "policy file (YAML) saying who may run what (default: the shipped policy, with the shell's user, this terminal, as its admin)")
	adminAddr := admin.Flag(fs)
	pprofAddr := admin.PprofFlag(fs)
	fs.DurationVar(&cfg.Gateway.ReplyTimeout, "reply_timeout", 0, "how long the gateway waits for a reply (default: --timeout + 10s)")
	available := gateway.Inputs().Instantiate()
	available.Flags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: botmesh [flags]

Runs the whole botmesh mesh in one process: an embedded NATS server, a router,
the command services (echo, registry: list/get/register/deregister service,
query: query and health, note: a conversation's notes), the demo go-micro
service greeter, and the inputs.
On a terminal these are the shell (type messages, replies are printed) and the
web chat (open the address it prints; --web_address, default 127.0.0.1:8080);
Ctrl-D or Ctrl-C quits. With stdin piped, the shell alone reads the messages
and, at the end of the input, botmesh waits for the outstanding replies and
exits.

  printf 'ping\necho hi there\nquery greeter Greeter.Hello {"name":"Ada"}\n' | botmesh

The embedded NATS server requires a password, made at each start: the parts in
this process have theirs, and botctl and other processes use the admin one,
which botmesh writes to --creds_file (mode 0600; botctl reads it by default).
With --nats_host beyond loopback or --nats_announce (the NATS server is
announced on the LAN with mDNS) it also speaks TLS, with a CA made at start
that the credentials file carries: parts on other hosts need a copy of the
file (--nats_creds FILE), and find the server with --find_nats.

The embedded NATS server keeps its JetStream store (command services' memory,
schedules, audit records) in --data_dir, so that they outlive a restart.

Set --nats_url to use a running NATS server instead of the embedded one; other
routers, gateways and command services can join through it.

Flags:
`)
		fs.PrintDefaults()
	}
	mcfg, log, err := mesh.Parse(fs, boot.Spec{Name: "botmesh", Args: args, LogTo: stderr, LogLevel: "warn"})
	if err != nil {
		return err
	}
	if *policyFile != "" {
		if cfg.Router.Policy, err = policy.Load(*policyFile); err != nil {
			return err
		}
	} else if cfg.Router.Policy, err = policy.Default().WithAdmins(shell.Name + ":" + terminalUser()); err != nil {
		// The terminal is in this process; nobody else reaches it without
		// the embedded NATS server's credentials.
		return err
	}
	cfg.Admin = admin.New(*adminAddr, log)
	if err := admin.ServePprof(ctx, *pprofAddr, log); err != nil {
		return inUse(err, "the profiles server (/debug/pprof)", "pprof_address", "a free address")
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "nats_url" {
			cfg.External = true
		}
	})
	if !cfg.External {
		// The embedded server is the address: nothing to look for, and
		// Run announces it.
		cfg.Announce, mcfg.Announce, mcfg.FindNATS = mcfg.Announce, false, false
		if cfg.CredsFile == "" && credsErr != nil {
			fmt.Fprintf(stderr, "botmesh: no credentials file for botctl and other parts (%v); set --creds_file\n", credsErr)
		}
		if cfg.DataDir == "" && dataErr != nil {
			fmt.Fprintf(stderr, "botmesh: nothing is kept after exit (%v); set --data_dir\n", dataErr)
		}
	} else {
		cfg.CredsFile, cfg.DataDir = "", ""
	}
	cfg.Mesh = mcfg
	cfg.Gateway.MaxMessageBytes = cfg.Router.MaxMessageBytes
	cfg.Gateway.ShutdownGrace = cfg.Router.ShutdownGrace
	cfg.Gateway.Delivery = cfg.Router.Delivery
	if cfg.Gateway.ReplyTimeout <= 0 {
		cfg.Gateway.ReplyTimeout = cfg.Router.Timeout + 10*time.Second
	}
	interactive := isTerminal(stdin)
	if *inputs == "" {
		// Piped input must end the run at its end: the web chat, which
		// never ends, runs only on a terminal.
		*inputs = shell.Name
		if interactive {
			*inputs = shell.Name + "," + web.Name
		}
	}
	*inputs = withMail(fs, *inputs)
	selected, err := available.Select(*inputs, adapter.Env{Stdin: stdin, Stdout: stdout, Log: log})
	if err != nil {
		return err
	}
	ctx, quit := context.WithCancel(ctx)
	defer quit()
	var webs []*web.Input
	for i, in := range selected {
		if in.String() == shell.Name && len(selected) > 1 {
			// Ctrl-D ends the shell; with other inputs running it quits
			// botmesh (after the replies in flight, within --shutdown_grace).
			selected[i] = quitOnEOF{Input: in, quit: quit}
		}
		if w, ok := in.(*web.Input); ok {
			webs = append(webs, w)
		}
	}
	return Run(ctx, cfg, selected, log, func(natsURL string) {
		shown := natsURL // the embedded server's carries the admin password
		if u, err := url.Parse(natsURL); err == nil {
			u.User = nil
			shown = u.String()
		}
		if !cfg.External {
			printServing(stderr, cfg, shown)
		}
		for _, w := range webs {
			fmt.Fprintf(stderr, "Web chat: %s\n", w.URL())
		}
		if !interactive {
			return
		}
		quitHint := "Ctrl-C to quit"
		if strings.Contains(","+*inputs+",", ","+shell.Name+",") {
			quitHint = "Type help, or Ctrl-D to quit"
		}
		fmt.Fprintf(stderr, "botmesh is ready (NATS at %s). %s.\n", shown, quitHint)
	})
}

// printServing tells the user where the credentials of the embedded NATS
// server are and, when it is open to other hosts, what a part there needs.
func printServing(w io.Writer, cfg Config, natsURL string) {
	if cfg.CredsFile != "" {
		fmt.Fprintf(w, "NATS credentials for botctl and other parts: %s (only you can read it)\n", cfg.CredsFile)
	}
	if cfg.DataDir != "" {
		fmt.Fprintf(w, "Data (notes, schedules, audit) kept across restarts in %s (--data_dir)\n", cfg.DataDir)
	}
	if !cfg.Announce && isLoopback(cfg.NATSHost) {
		return
	}
	port := ""
	if u, err := url.Parse(natsURL); err == nil {
		port = u.Port()
	}
	host := cfg.NATSHost
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host, _ = os.Hostname()
	}
	creds := cfg.CredsFile
	if creds == "" {
		creds = "(no credentials file: set --creds_file)"
	}
	how := "--nats_url tls://" + net.JoinHostPort(host, port)
	if cfg.Announce {
		how += " or --find_nats (it is announced on the LAN)"
	}
	fmt.Fprintf(w, "NATS is open to other hosts (port %s), with TLS and a password: a part there needs a copy of %s, given as --nats_creds, and %s\n", port, creds, how)
}

// quitOnEOF is an input whose end (Run returning before ctx ends: the
// shell at end of input) calls quit.
type quitOnEOF struct {
	adapter.Input
	quit context.CancelFunc
}

func (q quitOnEOF) Run(ctx context.Context, emit adapter.Emit) error {
	err := q.Input.Run(ctx, emit)
	if err == nil && ctx.Err() == nil {
		q.quit()
	}
	return err
}

// terminalUser returns the id the shell input gives its user: the OS
// user's name.
func terminalUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "user"
}

// isTerminal reports whether r is a terminal (not a pipe, a file or
// /dev/null).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// withMail adds the mail output to inputs when an SMTP server is set
// (--smtp_url, BOTMESH_SMTP_URL) and inputs lacks it: mail ADDRESS COMMAND
// then sends mail.
func withMail(fs *flag.FlagSet, inputs string) string {
	f := fs.Lookup("smtp_url")
	if f == nil || f.Value.String() == "" {
		return inputs
	}
	for _, n := range strings.Split(inputs, ",") {
		if strings.TrimSpace(n) == mail.Name {
			return inputs
		}
	}
	return inputs + "," + mail.Name
}
