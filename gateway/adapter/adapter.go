// Package adapter defines how a chat platform plugs into a botmesh gateway.
//
// Input and Conn keep the shape of the Micro Bot's input package (Flags,
// Init, Start, Stream, Stop, String; Recv, Send, Close) so a Micro Bot input
// ports with small changes: flags use the standard flag package, calls that
// block take a context, and events are the wire type chatops.v1.Event.
package adapter

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"unicode"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

// Input is one chat platform.
//
// The gateway calls, in order: Flags (before parsing the command line),
// Init (after), Start, Stream (once), and Stop when it shuts down.
type Input interface {
	// String returns the input's name: the word used in --inputs and the
	// Event platform ("shell", "slack").
	String() string
	// Flags adds the input's flags to fs. Flag names start with the
	// input's name ("slack_app_token").
	Flags(fs *flag.FlagSet)
	// Init takes the process environment and checks the parsed flags,
	// reporting what is missing in words for a user. It must not connect
	// anywhere.
	Init(env Env) error
	// Start connects to the platform. It returns once connected or when
	// the first attempt failed; reconnecting later is the input's job.
	Start(ctx context.Context) error
	// Stream returns the connection that carries events both ways.
	Stream(ctx context.Context) (Conn, error)
	// Stop disconnects. Recv on the input's Conn returns soon after.
	Stop(ctx context.Context) error
}

// Conn carries events between one platform and the mesh.
//
// Every event that Recv returns is answered: the gateway calls Send at least
// once with an event whose InReplyTo is its id, and exactly once with a
// final one (type REPLY or ERROR, after any PROGRESS), unless the gateway
// shuts down first, or the event repeats the Id of one taken within the
// de-duplication window (a platform's redelivery), which is dropped.
type Conn interface {
	// Recv blocks until the next message from a user. It returns io.EOF
	// when the input has ended for good (the shell at end of input) and
	// ctx.Err() when ctx ends. The input sets From, To, Data, Thread and
	// Meta, and Id: the platform's own event id where there is one (so a
	// redelivery keeps it), else a hash of sender, time and text, else a
	// random id. The gateway fills in the rest.
	Recv(ctx context.Context) (*chatopsv1.Event, error)
	// Send posts a reply where its To, Thread and Meta say.
	Send(ctx context.Context, ev *chatopsv1.Event) error
	// Close releases the connection.
	Close() error
}

// Healther is an Input that can report whether it is connected; the
// gateway's /healthz answers with it. Healthy returns nil when the input is
// connected (or does not need a connection), else what is wrong.
type Healther interface {
	Healthy() error
}

// Shared is an Input whose conversations any replica of the gateway can
// post to: the platform holds the conversation (a Slack channel, an XMPP
// chat, an IRC channel), not the gateway process. When a replica dies, a
// sibling of the same platform posts the replies to the messages it had
// taken. (A web chat session lives in one gateway process: it is not
// shared.)
type Shared interface {
	SharedConversations() bool
}

// ErrClosed is returned by Recv after Stop or Close.
var ErrClosed = errors.New("adapter: input closed")

// Env is what an input may use from the process it runs in.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Log    *slog.Logger
	// Prefix addresses the bot in a room when a message starts with it
	// ("!ping"; see Addressing); empty: no prefix. Set.Select sets it from
	// --prefix.
	Prefix string
}

// Constructor makes an Input. It must not connect anywhere or start
// goroutines: that is Start's job.
type Constructor func() Input

// Registry maps input names to constructors. The gateway fills one
// explicitly (gateway.Inputs); tests build their own.
type Registry map[string]Constructor

// Register adds a constructor; it panics on an empty or duplicate name, a
// programming error.
func (r Registry) Register(name string, c Constructor) {
	if name == "" || c == nil {
		panic("adapter: Register with empty name or nil constructor")
	}
	if _, dup := r[name]; dup {
		panic("adapter: input " + name + " registered twice")
	}
	r[name] = c
}

// Names returns the registered names, sorted.
func (r Registry) Names() []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Set holds one instance of every registered input, so that each can add
// its flags before the command line is parsed; Select then picks and
// initialises the ones asked for.
type Set struct {
	names  []string
	inputs map[string]Input
	prefix string
}

// Instantiate makes one instance of every registered input.
func (r Registry) Instantiate() *Set {
	s := &Set{names: r.Names(), inputs: map[string]Input{}, prefix: DefaultPrefix}
	for _, n := range s.names {
		s.inputs[n] = r[n]()
	}
	return s
}

// Names returns the inputs' names, sorted.
func (s *Set) Names() []string { return s.names }

// Flags adds every input's flags to fs, and --prefix, which all inputs
// share.
func (s *Set) Flags(fs *flag.FlagSet) {
	fs.StringVar(&s.prefix, "prefix", s.prefix, "in a channel or room, a message starting with this (then a letter or digit) is a command for the bot, as are \"@bot cmd\", \"bot: cmd\" and \"bot, cmd\" (empty: off)")
	for _, n := range s.names {
		s.inputs[n].Flags(fs)
	}
}

// Select initialises and returns the inputs named in list, a
// comma-separated list as --inputs takes it.
func (s *Set) Select(list string, env Env) ([]Input, error) {
	if strings.ContainsFunc(s.prefix, unicode.IsSpace) || strings.ContainsRune(s.prefix, 0) {
		return nil, fmt.Errorf("--prefix %q contains white space", s.prefix)
	}
	var out []Input
	seen := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		in, ok := s.inputs[n]
		if !ok {
			return nil, fmt.Errorf("unknown input %q (available: %s)", n, strings.Join(s.names, ", "))
		}
		if seen[n] {
			return nil, fmt.Errorf("input %q listed twice", n)
		}
		seen[n] = true
		ienv := env
		ienv.Prefix = s.prefix
		if env.Log != nil {
			ienv.Log = env.Log.With("input", n)
		}
		if err := in.Init(ienv); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no input given: use --inputs with one or more of %s", strings.Join(s.names, ", "))
	}
	return out, nil
}
