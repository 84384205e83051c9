package prosodytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/internal/callctx"
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Message is a message a Client received.
type Message struct {
	ID     string
	From   jid.JID
	Type   stanza.MessageType
	Body   string
	Thread string
}

// Client is a human user logged in to the server with a real XMPP client:
// StartTLS trusting the server's certificate, SASL SCRAM, a bound resource.
type Client struct {
	// JID is the client's full address.
	JID jid.JID

	s      *xmpp.Session
	msgs   chan Message
	served chan struct{}
	seq    atomic.Int64

	mu     sync.Mutex
	online map[string]bool // full JIDs (room occupants too) last seen available
	joined map[string]bool // rooms whose self-presence came back
	wake   chan struct{}   // closed and replaced on every presence
}

// Login logs user in and sends initial presence: the user is available,
// and messages to its bare JID reach this session. The client is logged
// out when the test ends.
func (s *Server) Login(t testing.TB, user, password string) *Client {
	t.Helper()
	return s.login(t, user, password, true, sasl.ScramSha256, sasl.ScramSha1)
}

// LoginPlain logs user in with SASL PLAIN (inside TLS), as an old client
// would, and sends initial presence.
func (s *Server) LoginPlain(t testing.TB, user, password string) *Client {
	t.Helper()
	return s.login(t, user, password, true, sasl.Plain)
}

// LoginUnavailable logs user in without sending presence: the session can
// send, but nobody sees it online and messages to the bare JID do not reach
// it.
func (s *Server) LoginUnavailable(t testing.TB, user, password string) *Client {
	t.Helper()
	return s.login(t, user, password, false, sasl.ScramSha256, sasl.ScramSha1)
}

func (s *Server) login(t testing.TB, user, password string, available bool, mechanisms ...sasl.Mechanism) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	origin := jid.MustParse(JID(user))
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		t.Fatalf("prosodytest: %s: dial: %v", user, err)
	}
	nctx, negotiated := callctx.For(ctx)
	sess, err := xmpp.NewSession(nctx, origin.Domain(), origin, conn, 0, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
			xmpp.StartTLS(&tls.Config{ServerName: Domain, RootCAs: pool, MinVersion: tls.VersionTLS12}),
			xmpp.SASL("", password, mechanisms...),
			xmpp.BindResource(),
		}}
	}))
	negotiated()
	if err != nil {
		conn.Close()
		t.Fatalf("prosodytest: %s: log in: %v", user, err)
	}
	c := &Client{
		JID:    sess.LocalAddr(),
		s:      sess,
		msgs:   make(chan Message, 1000),
		served: make(chan struct{}),
		online: map[string]bool{},
		joined: map[string]bool{},
		wake:   make(chan struct{}),
	}
	go func() {
		defer close(c.served)
		_ = sess.Serve(xmpp.HandlerFunc(c.handle))
	}()
	t.Cleanup(c.Close)
	if available {
		c.send(t, stanza.Presence{}.Wrap(nil))
	}
	return c
}

// Close logs out: it ends the stream and closes the connection.
func (c *Client) Close() {
	_ = c.s.Close()
	select {
	case <-c.served:
	case <-time.After(2 * time.Second):
	}
	_ = c.s.Conn().Close()
	<-c.served
}

type inMsg struct {
	stanza.Message
	Body   string `xml:"body"`
	Thread string `xml:"thread"`
}

type inPresence struct {
	stanza.Presence
	X *struct {
		Status []struct {
			Code int `xml:"code,attr"`
		} `xml:"status"`
	} `xml:"http://jabber.org/protocol/muc#user x"`
}

func (c *Client) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	// The handler's reader starts after the start element: put it back.
	d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
	switch start.Name.Local {
	case "message":
		var m inMsg
		if err := d.Decode(&m); err != nil {
			return nil
		}
		if m.Body == "" {
			return nil
		}
		select {
		case c.msgs <- Message{ID: m.ID, From: m.From, Type: m.Type, Body: m.Body, Thread: m.Thread}:
		default:
		}
	case "presence":
		var p inPresence
		if err := d.Decode(&p); err != nil {
			return nil
		}
		c.mu.Lock()
		switch p.Type {
		case stanza.AvailablePresence:
			c.online[p.From.String()] = true
			if p.X != nil {
				for _, s := range p.X.Status {
					if s.Code == 110 {
						c.joined[p.From.Bare().String()] = true
					}
				}
			}
		case stanza.UnavailablePresence, stanza.ErrorPresence:
			delete(c.online, p.From.String())
		}
		close(c.wake)
		c.wake = make(chan struct{})
		c.mu.Unlock()
	}
	return nil
}

// waitFor waits until cond (called under the lock) holds.
func (c *Client) waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		c.mu.Lock()
		ok, wake := cond(), c.wake
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-wake:
		case <-c.served:
			t.Fatalf("prosodytest: %s: session ended while waiting for %s", c.JID, what)
		case <-deadline:
			t.Fatalf("prosodytest: %s: %s not seen within %s", c.JID, what, d)
		}
	}
}

// WaitOnline waits until who (a full JID, a room occupant room@host/nick,
// or a bare JID: any of its resources) is available to this client.
func (c *Client) WaitOnline(t testing.TB, who string, d time.Duration) {
	t.Helper()
	c.waitFor(t, d, who+" online", func() bool { return c.isOnline(who) })
}

// WaitOffline waits until who is no longer available.
func (c *Client) WaitOffline(t testing.TB, who string, d time.Duration) {
	t.Helper()
	c.waitFor(t, d, who+" offline", func() bool { return !c.isOnline(who) })
}

func (c *Client) isOnline(who string) bool {
	if c.online[who] {
		return true
	}
	for full := range c.online {
		if j, err := jid.Parse(full); err == nil && j.Bare().String() == who {
			return true
		}
	}
	return false
}

// Join enters room (a bare room JID) as nick and waits until the room has
// confirmed it.
func (c *Client) Join(t testing.TB, room, nick string) {
	t.Helper()
	to, err := jid.Parse(room + "/" + nick)
	if err != nil {
		t.Fatal(err)
	}
	history := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "history"}, Attr: []xml.Attr{{Name: xml.Name{Local: "maxstanzas"}, Value: "0"}}})
	x := xmlstream.Wrap(history, xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/muc", Local: "x"}})
	c.send(t, stanza.Presence{To: to, ID: c.id()}.Wrap(x))
	c.waitFor(t, 15*time.Second, "self-presence in "+room, func() bool { return c.joined[room] })
}

// Subscribe asks to see who's presence (a bare JID).
func (c *Client) Subscribe(t testing.TB, who string) {
	t.Helper()
	c.send(t, stanza.Presence{To: jid.MustParse(who), Type: stanza.SubscribePresence, ID: c.id()}.Wrap(nil))
}

// Say sends a chat message to to (a bare or full JID) and returns its id.
func (c *Client) Say(t testing.TB, to, text string) string {
	t.Helper()
	return c.say(t, to, stanza.ChatMessage, text, "")
}

// SayThread sends a chat message in an XMPP thread.
func (c *Client) SayThread(t testing.TB, to, thread, text string) string {
	t.Helper()
	return c.say(t, to, stanza.ChatMessage, text, thread)
}

// SayRoom sends a group chat message to room (a bare room JID).
func (c *Client) SayRoom(t testing.TB, room, text string) string {
	t.Helper()
	return c.say(t, room, stanza.GroupChatMessage, text, "")
}

func (c *Client) say(t testing.TB, to string, typ stanza.MessageType, text, thread string) string {
	t.Helper()
	j, err := jid.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	id := c.id()
	payload := xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: "body"}})
	if thread != "" {
		payload = xmlstream.MultiReader(payload, xmlstream.Wrap(xmlstream.Token(xml.CharData(thread)), xml.StartElement{Name: xml.Name{Local: "thread"}}))
	}
	c.send(t, stanza.Message{To: j, Type: typ, ID: id}.Wrap(payload))
	return id
}

func (c *Client) send(t testing.TB, r xml.TokenReader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cctx, done := callctx.For(ctx)
	defer done()
	if err := c.s.Send(cctx, r); err != nil {
		t.Fatalf("prosodytest: %s: send: %v", c.JID, err)
	}
}

func (c *Client) id() string {
	return fmt.Sprintf("%s-%d-%d", c.JID.Localpart(), time.Now().UnixNano(), c.seq.Add(1))
}

// Next returns the next message with a body this client received, failing
// t after d.
func (c *Client) Next(t testing.TB, d time.Duration) Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(d):
		t.Fatalf("prosodytest: %s: no message within %s", c.JID, d)
		return Message{}
	}
}

// NextFrom returns the next message from from (a full JID, a room
// occupant, or a bare JID: any resource), dropping others; it fails t
// after d.
func (c *Client) NextFrom(t testing.TB, from string, d time.Duration) Message {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-c.msgs:
			if m.From.String() == from || m.From.Bare().String() == from {
				return m
			}
		case <-deadline:
			t.Fatalf("prosodytest: %s: no message from %s within %s", c.JID, from, d)
			return Message{}
		}
	}
}

// Quiet fails t if a message from from arrives within d.
func (c *Client) Quiet(t testing.TB, from string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-c.msgs:
			if m.From.String() == from || m.From.Bare().String() == from {
				t.Fatalf("prosodytest: %s: unexpected message from %s: %q", c.JID, m.From, m.Body)
			}
		case <-deadline:
			return
		}
	}
}
