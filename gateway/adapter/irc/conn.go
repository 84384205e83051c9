package ircgw

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/ergochat/irc-go/ircevent"
	"github.com/ergochat/irc-go/ircmsg"
)

// link is one connection to the server, registered.
type link struct {
	in *Input
	c  *ircevent.Connection

	mu      sync.Mutex
	raw     *recordingConn
	joined  map[string]bool // folded channel names the server put the bot in
	lastErr string          // the server's last ERROR line
}

// run connects and keeps the input connected until ctx ends
// (adapter.Backoff). The first attempt's result goes to first.
func (in *Input) run(ctx context.Context, first chan<- error) {
	adapter.Backoff{Initial: time.Second, Max: in.cfg.ReconnectMax}.Run(ctx, in.log, first, func(ctx context.Context) (func(context.Context) error, error) {
		began := time.Now()
		l, err := in.connect(ctx)
		if err != nil {
			return nil, err
		}
		in.log.Info("connected", "server", in.cfg.Server, "nick", l.c.CurrentNick(), "tls", in.cfg.TLS, "took", time.Since(began).Round(time.Millisecond))
		return func(ctx context.Context) error {
			in.setLink(l)
			defer in.setLink(nil)
			return l.serve(ctx)
		}, nil
	})
}

// connect dials, registers (CAP, SASL, NICK/USER; a taken nick becomes
// nick_0, nick_1…) and asks to join the channels.
func (in *Input) connect(ctx context.Context) (*link, error) {
	l := &link{in: in, joined: map[string]bool{}}
	c := &ircevent.Connection{
		Server:        in.cfg.Server,
		Nick:          in.cfg.Nick,
		User:          userName(in.cfg.Nick),
		RealName:      "botmesh ChatOps bot",
		UseTLS:        in.cfg.TLS,
		TLSConfig:     in.tls.Clone(),
		UseSASL:       in.cfg.SASLUser != "",
		SASLLogin:     in.cfg.SASLUser,
		SASLPassword:  in.password,
		SASLMech:      "PLAIN",
		RequestCaps:   []string{"server-time", "message-tags", "account-tag"},
		Timeout:       in.cfg.Timeout,
		KeepAlive:     in.cfg.KeepAlive,
		ReconnectFreq: time.Hour, // reconnects are run's, not the library's
		QuitMessage:   "botmesh stopping",
		Version:       "botmesh",
		FetchUserHost: true,
		// The library logs a few events (an ERROR from the server, a
		// panic in a callback); never raw lines, which would show the
		// SASL exchange: Debug stays off.
		Log: log.New(libLog{in.log}, "", 0),
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, in.cfg.Timeout)
			defer cancel()
			conn, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			rc := &recordingConn{Conn: conn}
			l.mu.Lock()
			l.raw = rc
			l.mu.Unlock()
			return rc, nil
		},
	}
	l.c = c
	c.AddConnectCallback(func(ircmsg.Message) {
		for _, ch := range in.cfg.Channels {
			_ = c.Join(ch)
		}
	})
	c.AddCallback("JOIN", func(m ircmsg.Message) { l.membership(m, 0, m.Nick(), true) })
	c.AddCallback("PART", func(m ircmsg.Message) { l.membership(m, 0, m.Nick(), false) })
	c.AddCallback("KICK", func(m ircmsg.Message) {
		if len(m.Params) >= 2 {
			l.membership(m, 0, m.Params[1], false)
		}
	})
	for _, code := range []string{ircevent.ERR_NOSUCHCHANNEL, ircevent.ERR_TOOMANYCHANNELS, ircevent.ERR_CHANNELISFULL, ircevent.ERR_INVITEONLYCHAN, ircevent.ERR_BANNEDFROMCHAN, ircevent.ERR_BADCHANNELKEY} {
		c.AddCallback(code, func(m ircmsg.Message) {
			in.log.Error("cannot join channel", "reply", strings.Join(m.Params[1:], " "))
		})
	}
	c.AddCallback("PRIVMSG", l.privmsg)
	c.AddCallback("ERROR", func(m ircmsg.Message) {
		l.mu.Lock()
		l.lastErr = strings.Join(m.Params, " ")
		l.mu.Unlock()
	})
	// On a lost connection, end the library's Loop instead of letting it
	// reconnect: run reconnects, with backoff.
	c.AddDisconnectCallback(func(ircmsg.Message) { c.Quit() })

	stop := context.AfterFunc(ctx, l.closeRaw) // Stop during registration
	err := c.Connect()
	stop()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("irc: connect to %s as %s: %w", in.cfg.Server, in.cfg.Nick, err)
	}
	return l, nil
}

// serve runs the connection until it ends (why is returned) or ctx ends
// (the bot quits; serve returns nil).
func (l *link) serve(ctx context.Context) error {
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		l.c.Loop()
	}()
	select {
	case <-loopDone:
		return l.why()
	case <-ctx.Done():
		l.c.Quit()
		select {
		case <-loopDone:
		case <-time.After(2 * time.Second): // the server ignores QUIT
			l.closeRaw()
			<-loopDone
		}
		return nil
	}
}

// why describes how a connection ended.
func (l *link) why() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.lastErr != "":
		return fmt.Errorf("irc: %s closed the connection: %s", l.in.cfg.Server, l.lastErr)
	case l.raw != nil && l.raw.err() != nil && !errors.Is(l.raw.err(), net.ErrClosed):
		return fmt.Errorf("irc: connection to %s: %w", l.in.cfg.Server, l.raw.err())
	}
	return fmt.Errorf("irc: no answer from %s to a keep-alive ping within %s", l.in.cfg.Server, l.in.cfg.Timeout)
}

func (l *link) closeRaw() {
	l.mu.Lock()
	raw := l.raw
	l.mu.Unlock()
	if raw != nil {
		_ = raw.Close()
	}
}

// membership records the bot (nick) entering or leaving channel
// m.Params[i].
func (l *link) membership(m ircmsg.Message, i int, nick string, in bool) {
	if len(m.Params) <= i || !foldEqual(nick, l.c.CurrentNick()) {
		return
	}
	ch := foldString(m.Params[i])
	l.mu.Lock()
	was := l.joined[ch]
	if in {
		l.joined[ch] = true
	} else {
		delete(l.joined, ch)
	}
	l.mu.Unlock()
	switch {
	case in && !was:
		l.in.log.Info("joined channel", "channel", m.Params[i], "nick", nick)
	case !in && was && m.Command == "KICK":
		l.in.log.Warn("kicked from channel; rejoining on the next reconnect", "channel", m.Params[i], "by", m.Nick())
	}
	l.in.wake()
}

// ready reports whether lines can go to target now: a channel the bot is
// in, or a nick.
func (l *link) ready(target string) bool {
	if !isChannel(target, l.c.ISupport()["CHANTYPES"]) {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.joined[foldString(target)]
}

// budget is how many bytes of text fit in one line to target.
func (l *link) budget(target string) int {
	return max(l.c.MaxMessageLength(target)-8, 16)
}

func (l *link) privmsg(m ircmsg.Message) {
	if l.in.pastes.take(m) {
		l.in.log.Debug("next piece of a split message", "from", m.Nick())
		return
	}
	s := self{
		nick:      l.c.CurrentNick(),
		want:      l.in.cfg.Nick,
		prefix:    l.in.cfg.Prefix,
		chanTypes: l.c.ISupport()["CHANTYPES"],
		network:   l.c.ISupport()["NETWORK"],
	}
	if s.network == "" {
		s.network, _, _ = net.SplitHostPort(l.in.cfg.Server)
	}
	ev, why := normalize(m, s, time.Now())
	if ev == nil {
		l.in.log.Debug("message ignored", "from", m.Nick(), "reason", why)
		return
	}
	l.in.log.Debug("message received", "from", ev.GetFrom().GetId(), "to", ev.GetTo(), "event", ev.GetId())
	l.in.pastes.hold(m, ev)
}

// wake tells the sender that something changed.
func (in *Input) wake() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.changed()
}

func foldString(s string) string {
	b := []byte(s)
	for i := range b {
		b[i] = fold(b[i])
	}
	return string(b)
}

// userName derives the USER name from the nick: letters and digits only.
func userName(nick string) string {
	u := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, nick)
	if u == "" {
		return "botmesh"
	}
	return u
}

// recordingConn keeps the first read or write error, to say why a
// connection ended (a server that drops a flooding client may reset the
// connection before its ERROR line can be read; the write then fails
// first, and the library closes the connection).
type recordingConn struct {
	net.Conn
	mu       sync.Mutex
	firstErr error
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.record(err)
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.record(err)
	return n, err
}

// record keeps err if it is the first, and not the library's own closing.
func (c *recordingConn) record(err error) {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return
	}
	c.mu.Lock()
	if c.firstErr == nil {
		c.firstErr = err
	}
	c.mu.Unlock()
}

func (c *recordingConn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstErr
}

// libLog passes irc-go's log lines to the input's logger.
type libLog struct{ log *slog.Logger }

func (w libLog) Write(p []byte) (int, error) {
	w.log.Info("irc library", "detail", strings.TrimSpace(string(p)))
	return len(p), nil
}
