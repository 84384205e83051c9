// Command botctl talks to a running botmesh environment from a terminal,
// as a gateway would: each argument (or, with none, each line of stdin) is a
// message; the replies are printed in order. It exits 1 if any reply is an
// error.
//
//	botctl --nats_url nats://127.0.0.1:4222 ping "list services"
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/boot"
	"github.com/botmesh/botmesh/sdk/mesh"
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
		fmt.Fprint(fs.Output(), "Usage: botctl [flags] [MESSAGE...]\n\nSends each MESSAGE (or each line of stdin) to a running botmesh, as a gateway would,\nand prints the replies in order.\n\nFlags:\n")
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
	mcfg, log, err := boot.Parse(fs, boot.Spec{Name: "botctl", Args: flagArgs, LogTo: os.Stderr, NATSOnly: true, LogLevel: "error"})
	if err != nil {
		return err
	}
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
	m, err := mesh.Connect(ctx, mcfg, mesh.WithLogger(log))
	if err != nil {
		return err
	}
	defer m.Close()
	sc := newScript(lines, stdout)
	cfg.DedupWindow = -1 // every line is a new message
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

var (
	_ adapter.Input = (*script)(nil)
	_ adapter.Conn  = (*script)(nil)
)

func newScript(lines []string, out io.Writer) *script {
	s := &script{lines: lines, out: out, answered: make(chan struct{}, 1)}
	s.answered <- struct{}{}
	return s
}

func (s *script) String() string                               { return "cli" }
func (s *script) Flags(*flag.FlagSet)                          {}
func (s *script) Init(adapter.Env) error                       { return nil }
func (s *script) Start(context.Context) error                  { return nil }
func (s *script) Stream(context.Context) (adapter.Conn, error) { return s, nil }
func (s *script) Stop(context.Context) error                   { return nil }
func (s *script) Close() error                                 { return nil }

func (s *script) Recv(ctx context.Context) (*chatopsv1.Event, error) {
	select {
	case <-s.answered:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if len(s.lines) == 0 {
		return nil, io.EOF
	}
	line := s.lines[0]
	s.lines = s.lines[1:]
	user := os.Getenv("USER")
	if user == "" {
		user = "botctl"
	}
	return &chatopsv1.Event{Id: nuid.Next(), From: &chatopsv1.Peer{Id: user, Name: user}, To: "cli", Data: []byte(line)}, nil
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
