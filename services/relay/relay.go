// Package relay is the demo stream processor (sdk/stream): it watches the
// messages of one command (deploy, by default) said in a conversation, or
// in any, and posts a line about each to another conversation, on any
// Slack, XMPP or IRC platform. For instance every "deploy …" said in
// slack's #dev shows in irc's #ops:
//
//	relay --from slack:C0DEV --to 'irc:#ops'
package relay

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/parse"
	"github.com/botmesh/botmesh/sdk/stream"
)

// Name is the processor's default name: its consumer's, and its NATS
// identity's (processor-relay in deploy/nats/permissions.conf).
const Name = "relay"

// Config says what to relay where.
type Config struct {
	// From is the conversation whose messages are relayed, as
	// platform:conversation (slack:C0DEV, irc:#dev), or a platform alone
	// (slack), or empty for every conversation.
	From string
	// To is the conversation the lines go to, platform:conversation.
	To string
	// Command is the command whose messages are relayed (its first words).
	Command string
	// PostTimeout bounds one post; a post that fails is tried again with
	// the event (sdk/stream's retries).
	PostTimeout time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Command: "deploy", PostTimeout: 30 * time.Second}
}

// RegisterFlags adds the relay's flags to fs, with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.From, "from", c.From, "conversation to watch, platform:conversation (e.g. slack:C0DEV), a platform alone, or empty for all")
	fs.StringVar(&c.To, "to", c.To, "conversation to post to, platform:conversation (e.g. irc:#ops); slack, xmpp or irc")
	fs.StringVar(&c.Command, "command", c.Command, "command whose messages are relayed")
	fs.DurationVar(&c.PostTimeout, "post_timeout", c.PostTimeout, "longest wait for one post to be stored")
}

// conversation splits platform:conversation; the conversation may hold
// colons (an XMPP room's JID does not, an IRC channel may).
func conversation(s string) (platform, conv string, ok bool) {
	platform, conv, ok = strings.Cut(s, ":")
	return platform, conv, ok && platform != "" && conv != "" && chatopsv1.ValidToken(platform)
}

// Validate says in a sentence what is wrong with c; nil if nothing.
func (c Config) Validate() error {
	if _, _, ok := conversation(c.To); !ok {
		return fmt.Errorf("--to %q: give the conversation to post to as platform:conversation, e.g. irc:#ops", c.To)
	}
	if c.From != "" && !chatopsv1.ValidToken(c.From) {
		if _, _, ok := conversation(c.From); !ok {
			return fmt.Errorf("--from %q: give a conversation as platform:conversation (e.g. slack:C0DEV), or a platform alone", c.From)
		}
	}
	if strings.TrimSpace(c.Command) == "" {
		return errors.New("--command is empty: name the command whose messages to relay, e.g. deploy")
	}
	if c.PostTimeout <= 0 {
		return errors.New("--post_timeout must be positive")
	}
	return nil
}

// filter is what c selects from the stream.
func (c Config) filter() stream.Filter {
	f := stream.Filter{Command: c.Command}
	if p, conv, ok := conversation(c.From); ok {
		f.Platform, f.Conversation = p, conv
	} else {
		f.Platform = c.From
	}
	return f
}

// Line is what the relay posts about ev.
func Line(ev *chatopsv1.Event) string {
	who := ev.GetFrom().GetName()
	if who == "" {
		who = ev.GetFrom().GetId()
	}
	msg, _ := parse.Parse(ev.GetData(), 0) // its words, as the routers read them
	return fmt.Sprintf("%s said %q in %s:%s", who, strings.Join(msg.Words, " "), ev.GetPlatform(), ev.GetTo())
}

// Run relays with p until ctx ends.
func Run(ctx context.Context, p *stream.Processor, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	platform, conv, _ := conversation(c.To)
	return p.Run(ctx, c.filter(), func(ctx context.Context, ev *chatopsv1.Event) error {
		post := stream.Message(platform, conv, Line(ev))
		// One post per event, even if the event comes again.
		post.Id = p.Name() + "-" + ev.GetPlatform() + "-" + ev.GetId()
		pctx, cancel := context.WithTimeout(ctx, c.PostTimeout)
		defer cancel()
		return p.Post(pctx, post)
	})
}
