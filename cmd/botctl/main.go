// Command botctl talks to a running botmesh environment from a terminal,
// as a gateway would: each argument (or, with none, each line of stdin) is a
// message; the replies are printed in order. It exits 1 if any reply is an
// error.
//
// Given no NATS credentials, botctl uses the file the all-in-one (botmesh)
// writes at start (natsconn.DefaultCredsFile), and the server's URL in it
// unless --nats_url is given: against the all-in-one of the same user it
// needs no flags.
//
//	botctl ping "list services"
//	botctl --nats_url nats://127.0.0.1:4222 --nats_creds ~/mesh.creds ping
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/boot"
	"github.com/botmesh/botmesh/sdk/natsconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errReplyError):
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "botctl:", err)
		os.Exit(2)
	}
}

var errReplyError = errors.New("a reply was an error")

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("botctl", flag.ContinueOnError)
	cfg := gateway.DefaultConfig()
	fs.DurationVar(&cfg.ReplyTimeout, "reply_timeout", cfg.ReplyTimeout, "how long to wait for each reply")
	fs.StringVar(&cfg.Delivery, "delivery", cfg.Delivery, "jetstream or core; must match the routers'")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: botctl [flags] [MESSAGE...]\n\nSends each MESSAGE (or each line of stdin) to a running botmesh, as a gateway would,\nand prints the replies in order.\n\nGiven no NATS credentials, botctl uses the file botmesh (the all-in-one) writes\nat start"+defaultCredsHint()+", and the NATS URL in it unless\n--nats_url is given.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	// Messages come after the flags: split them off before flag parsing.
	flagArgs, messages := args, []string(nil)
	for i, a := range args {
		if !strings.HasPrefix(a, "-") && (i == 0 || !strings.HasPrefix(args[i-1], "-") || !needsValue(fs, args[i-1])) {
			flagArgs, messages = args[:i], args[i:]
			break
		}
	}
	spec := boot.Spec{Name: "botctl", Args: flagArgs, LogTo: os.Stderr, LogLevel: "error"}
	mcfg, log, err := boot.Parse(fs, spec)
	if err != nil {
		return err
	}
	creds := useCredsFile(&mcfg, boot.NATSGiven(fs, spec))
	lines := messages
	if len(lines) == 0 {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(l) != "" {
				lines = append(lines, l)
			}
		}
	}
	m, err := connect(ctx, mcfg, creds, log)
	if err != nil {
		return err
	}
	defer m.Close()
	sc := newScript(lines, stdout)
	cfg.DedupWindow = -1  // every line is a new message
	cfg.NoOutbound = true // it exits after its answers
	g, err := gateway.New(m.NATS(), []adapter.Input{sc}, cfg, log)
	if err != nil {
		return err
	}
	if err := g.Run(ctx); err != nil {
		return err
	}
	if sc.sawError {
		return errReplyError
	}
	return nil
}

// credsWait bounds the wait for the server named in a credentials file: a
// file left by a botmesh that was killed names a server that is gone.
const credsWait = 15 * time.Second

// credsUse says where botctl's credentials come from, for its errors.
type credsUse struct {
	// file is the credentials file botctl uses or would use: --nats_creds,
	// else the default; empty when neither is known.
	file string
	// urlFromFile is set when the NATS URL came from the file.
	urlFromFile bool
}

// useCredsFile completes cfg from a botmesh credentials file: the default
// one when no credentials were given and it exists, and the URL in it when
// no address was given.
func useCredsFile(cfg *natsconn.Config, natsGiven bool) credsUse {
	var cu credsUse
	switch {
	case cfg.Auth.Creds != "":
		cu.file = cfg.Auth.Creds
	case !cfg.Auth.HasCredentials():
		def, err := natsconn.DefaultCredsFile()
		if err != nil {
			return cu
		}
		cu.file = def
		if _, err := os.Stat(def); err != nil {
			return cu // not running, or another user's: the error says so
		}
		cfg.Auth.Creds = def
	default:
		return cu // user/password, token or nkey given
	}
	if natsGiven || cfg.FindNATS {
		return cu
	}
	if cf, err := natsconn.ReadCredsFile(cu.file); err == nil && cf.URL != "" {
		cfg.NATSURL, cu.urlFromFile = cf.URL, true
		if cfg.ConnectWait == 0 {
			cfg.ConnectWait = credsWait
		}
	}
	return cu
}

// connect connects to the mesh; a server that refuses botctl's credentials
// ends the wait at once, with a sentence that says what to do.
func connect(ctx context.Context, cfg natsconn.Config, cu credsUse, log *slog.Logger) (*natsconn.Conn, error) {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	refused := nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
		if authError(err) || errors.Is(err, nats.ErrTLS) {
			cancel(err)
		}
	})
	m, err := natsconn.Connect(cctx, cfg, log, refused)
	if err == nil {
		return m, nil
	}
	file := cu.file
	if file == "" {
		file = "the file botmesh printed at start"
	}
	switch {
	case authError(err):
		return nil, fmt.Errorf("NATS refused: authorization violation — botctl needs the credentials in %s; run it as the user that started botmesh or pass --nats_creds FILE", file)
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("cannot read the NATS credentials in %s — run botctl as the user that started botmesh or pass --nats_creds FILE", file)
	case errors.Is(err, nats.ErrTLS):
		return nil, fmt.Errorf("NATS at %s: TLS failed (its certificate is not from the CA in %s): pass the credentials file of the botmesh you mean with --nats_creds FILE", cfg.NATSURL, file)
	case cu.urlFromFile && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return nil, fmt.Errorf("no NATS server answers at %s (from %s) after %s: is botmesh still running?", cfg.NATSURL, file, cfg.ConnectWait)
	}
	return nil, err
}

// authError reports whether err is a NATS server refusing credentials.
func authError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked)
}

// defaultCredsHint returns " (PATH)" for the usage text.
func defaultCredsHint() string {
	if p, err := natsconn.DefaultCredsFile(); err == nil {
		return " (" + p + ")"
	}
	return ""
}

// needsValue reports whether flag arg (e.g. "--nats_url") takes a value in
// the next argument.
func needsValue(fs *flag.FlagSet, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return true // a flag boot adds later (mesh, log): they all take values
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// script is an input that says its lines one at a time, each after the
// previous one is answered, and prints the answers.
type script struct {
	lines    []string
	out      io.Writer
	answered chan struct{}
	sawError bool
}

var _ adapter.Input = (*script)(nil)

func newScript(lines []string, out io.Writer) *script {
	s := &script{lines: lines, out: out, answered: make(chan struct{}, 1)}
	s.answered <- struct{}{}
	return s
}

func (s *script) String() string { return "cli" }

// Run says the lines, each once the previous one is answered, and returns
// nil after the last answer.
func (s *script) Run(ctx context.Context, emit adapter.Emit) error {
	user := os.Getenv("USER")
	if user == "" {
		user = "botctl"
	}
	for _, line := range s.lines {
		select {
		case <-s.answered:
		case <-ctx.Done():
			return nil
		}
		if err := emit(ctx, &chatopsv1.Event{Id: nuid.Next(), From: &chatopsv1.Peer{Id: user, Name: user}, To: "cli", Data: []byte(line)}); err != nil {
			return nil
		}
	}
	select {
	case <-s.answered:
	case <-ctx.Done():
	}
	return nil
}

func (s *script) Send(_ context.Context, ev *chatopsv1.Event) error {
	text := strings.TrimSuffix(string(ev.GetData()), "\n")
	if _, err := fmt.Fprintln(s.out, text); err != nil {
		return err
	}
	switch ev.GetType() {
	case chatopsv1.EventType_EVENT_TYPE_PROGRESS:
		return nil
	case chatopsv1.EventType_EVENT_TYPE_ERROR:
		s.sawError = true
	}
	s.answered <- struct{}{}
	return nil
}
