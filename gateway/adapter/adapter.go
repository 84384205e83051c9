// Package adapter defines how a chat platform plugs into a botmesh gateway.
//
// An Input runs until its context ends and hands each message to the
// gateway (Run); the gateway posts the replies with Send. A Micro Bot input
// ports with small changes: its Start, Stream and Recv loop become Run
// (Drive builds Run from a receive and a stop call), its Send stays, its
// Flags and Init use the standard flag package, and events are the wire
// type chatops.v1.Event.
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

// Emit hands one message from a user to the gateway. The input sets From,
// To, Data, Thread and Meta, and Id: the platform's own event id where
// there is one (so a redelivery keeps it), else a hash of sender, time and
// text, else a random id. The gateway fills in the rest. Emit returns an
// error only when ctx is done; the input then stops. Call it from one
// goroutine at a time: messages reach the mesh in the order given.
type Emit func(ctx context.Context, ev *chatopsv1.Event) error

// Input is one chat platform as the gateway drives it.
//
// Every message an Input emits is answered: the gateway calls Send at least
// once with an event whose InReplyTo is its id, and exactly once with a
// final one (type REPLY or ERROR, after any PROGRESS), unless the gateway
// shuts down first, or the event repeats the Id of one taken within the
// de-duplication window (a platform's redelivery), which is dropped.
//
// Extras are separate interfaces the gateway finds by type assertion:
// Starter, Healther, Shared.
type Input interface {
	// String returns the input's name: the word used in --inputs and the
	// Event platform ("shell", "slack").
	String() string
	// Run delivers the platform's messages to emit until ctx ends (it then
	// disconnects, giving queued replies up to StopGrace, and returns nil
	// or why it could not stop cleanly), the input ends for good (the
	// shell at end of input: it returns nil), or the connection fails for
	// good (it returns why). Reconnecting in between is the input's job
	// (see Backoff). Run is called once.
	Run(ctx context.Context, emit Emit) error
	Conn
}

// Conn sends replies back to the platform the messages came from.
type Conn interface {
	// Send posts a reply where its To, Thread and Meta say. It may be
	// called from any goroutine while Run runs; after Run has returned it
	// fails.
	Send(ctx context.Context, ev *chatopsv1.Event) error
}

// Configurable is an Input that a Registry makes: it takes flags from the
// command line and the process environment.
type Configurable interface {
	Input
	// Flags adds the input's flags to fs. Flag names start with the
	// input's name ("slack_app_token").
	Flags(fs *flag.FlagSet)
	// Init takes the process environment and checks the parsed flags,
	// reporting what is missing in words for a user. It must not connect
	// anywhere.
	Init(env Env) error
}

// Starter is an Input with a first step whose failure should stop the
// gateway before it reports ready: listening (the web chat) or the first
// connection (a refused login). The gateway calls Start, then Run. When
// Start fails it has let go of what it took, and Run is not called.
type Starter interface {
	Start(ctx context.Context) error
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

// ErrClosed is returned by an input's Send (or Recv) once it has stopped.
var ErrClosed = errors.New("adapter: input closed")

// ErrNotPosted, wrapped in an error of Send, says that the message was
// certainly not posted and may be later (a mail server that is down): a
// message of the outbound path is then offered again, after a pause,
// instead of being acknowledged. Any other error of Send acknowledges
// it (a post that can never succeed is not tried forever).
var ErrNotPosted = errors.New("adapter: not posted yet")

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
// goroutines: that is Start's and Run's job.
type Constructor func() Configurable

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
	inputs map[string]Configurable
	prefix string
}

// Instantiate makes one instance of every registered input.
func (r Registry) Instantiate() *Set {
	s := &Set{names: r.Names(), inputs: map[string]Configurable{}, prefix: DefaultPrefix}
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

// aliases are the Micro Bot's names of inputs botmesh has under another
// name: its command line (--inputs=hipchat,slack) works as its README
// wrote it. HipChat spoke XMPP; its flags are the xmpp input's aliases.
var aliases = map[string]string{"hipchat": "xmpp"}

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
		if a, ok := aliases[n]; ok {
			if _, ok := s.inputs[a]; ok {
				n = a
			}
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
