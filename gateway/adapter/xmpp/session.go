package xmppgw

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/xmpp/internal/callctx"
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/dial"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
)

const nsMUC = "http://jabber.org/protocol/muc"

// mechanisms are the SASL mechanisms offered, strongest first. Only SCRAM:
// the password never crosses the wire, even inside TLS.
var mechanisms = []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha256, sasl.ScramSha1Plus, sasl.ScramSha1}

// session is one XMPP connection, logged in.
type session struct {
	in     *Input
	xs     *xmpp.Session
	conn   net.Conn
	addr   jid.JID // the bound full JID
	remote string  // the server's address
	iq     *mux.ServeMux
	served chan struct{} // closed when Serve has returned
	err    error         // why Serve returned; read after served is closed
	ending atomic.Bool   // set when the bot logs out

	mu        sync.Mutex
	rooms     map[string]string // joined room → the bot's nick there
	occupants map[string]string // room/nick → real bare JID
	joins     map[string]chan error
}

// connect dials the server, negotiates TLS, SASL and a resource, sends
// initial presence and joins the rooms.
func (in *Input) connect(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var conn net.Conn
	var err error
	if in.addr != "" {
		conn, err = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext(ctx, "tcp", in.addr)
	} else {
		conn, err = (&dial.Dialer{Dialer: net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}, NoTLS: true}).Dial(ctx, "tcp", in.self)
	}
	if err != nil {
		return nil, fmt.Errorf("xmpp: connect to %s: %w", in.serverName(), err)
	}
	remote := conn.RemoteAddr().String()
	tlsCfg := in.tls.Clone()
	nctx, negotiated := callctx.For(ctx)
	xs, err := xmpp.NewSession(nctx, in.self.Domain(), in.self, conn, 0, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
			xmpp.StartTLS(tlsCfg),
			xmpp.SASL("", in.password, mechanisms...),
			xmpp.BindResource(),
		}}
	}))
	negotiated()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("xmpp: log in to %s as %s: %w", remote, in.self, err)
	}
	s := &session{
		in:        in,
		xs:        xs,
		conn:      xs.Conn(),
		addr:      xs.LocalAddr(),
		remote:    remote,
		iq:        mux.New(stanza.NSClient, ping.Handle()),
		served:    make(chan struct{}),
		rooms:     map[string]string{},
		occupants: map[string]string{},
		joins:     map[string]chan error{},
	}
	go func() {
		defer close(s.served)
		s.err = xs.Serve(s)
	}()
	if err := s.send(ctx, stanza.Presence{}.Wrap(nil)); err != nil {
		s.abort()
		return nil, fmt.Errorf("xmpp: send presence: %w", err)
	}
	for _, room := range in.rooms {
		nick, err := s.join(ctx, room, in.nick)
		if s.dead() {
			s.abort()
			return nil, fmt.Errorf("xmpp: join %s: %w", room, s.closedErr())
		}
		if err != nil {
			in.log.Error("could not join room", "room", room.String(), "err", err)
			continue
		}
		in.log.Info("joined room", "room", room.String(), "nick", nick)
	}
	return s, nil
}

func (in *Input) serverName() string {
	if in.addr != "" {
		return in.addr
	}
	return in.self.Domainpart()
}

// serve keeps the session alive, pinging the server every KeepAlive,
// until the connection ends (its error is returned) or ctx ends (the
// session logs out and serve returns nil).
func (s *session) serve(ctx context.Context) error {
	tick := time.NewTicker(s.in.cfg.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-s.served:
			return s.closedErr()
		case <-ctx.Done():
			s.logout()
			return nil
		case <-tick.C:
			pctx, cancel := context.WithTimeout(ctx, min(s.in.cfg.KeepAlive, 30*time.Second))
			cctx, done := callctx.For(pctx)
			err := ping.Send(cctx, s.xs, s.addr.Domain())
			done()
			cancel()
			if err != nil && ctx.Err() == nil && !s.dead() {
				s.abort()
				return fmt.Errorf("xmpp: keep-alive ping to %s: %w", s.remote, err)
			}
		}
	}
}

func (s *session) dead() bool {
	select {
	case <-s.served:
		return true
	default:
		return false
	}
}

// closedErr says why the stream ended; call it after served is closed.
func (s *session) closedErr() error {
	<-s.served
	if s.err == nil {
		return fmt.Errorf("xmpp: %s closed the stream", s.remote)
	}
	return fmt.Errorf("xmpp: connection to %s: %w", s.remote, s.err)
}

// logout sends unavailable presence and ends the stream, then waits a
// moment for the server to end its own before closing the connection.
func (s *session) logout() {
	s.ending.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.send(ctx, stanza.Presence{Type: stanza.UnavailablePresence}.Wrap(nil))
	_ = s.xs.Close()
	select {
	case <-s.served:
	case <-ctx.Done():
	}
	s.abort()
}

// abort closes the connection and waits for Serve to return.
func (s *session) abort() {
	_ = s.conn.Close()
	<-s.served
}

// say posts a message.
func (s *session) say(ctx context.Context, to jid.JID, typ, thread, body string) error {
	payload := xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}})
	if thread != "" {
		payload = xmlstream.MultiReader(payload, xmlstream.Wrap(xmlstream.Token(xml.CharData(thread)), xml.StartElement{Name: xml.Name{Local: "thread"}}))
	}
	return s.send(ctx, stanza.Message{To: to, Type: stanza.MessageType(typ), ID: newID()}.Wrap(payload))
}

// join enters room as nick and waits until the room confirms it; when the
// nick is taken it tries nick_ and nick__. It returns the nick it got.
func (s *session) join(ctx context.Context, room jid.JID, nick string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for try := 0; ; try++ {
		occ, err := room.WithResource(nick)
		if err != nil {
			return "", fmt.Errorf("xmpp: room nick %q: %w", nick, err)
		}
		done := make(chan error, 1)
		s.mu.Lock()
		s.joins[room.String()] = done
		s.mu.Unlock()
		// No history: old messages must not be answered again.
		history := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "history"}, Attr: []xml.Attr{{Name: xml.Name{Local: "maxstanzas"}, Value: "0"}}})
		x := xmlstream.Wrap(history, xml.StartElement{Name: xml.Name{Space: nsMUC, Local: "x"}})
		if err := s.send(ctx, stanza.Presence{To: occ, ID: newID()}.Wrap(x)); err != nil {
			return "", fmt.Errorf("xmpp: join %s: %w", room, err)
		}
		select {
		case err = <-done:
		case <-s.served:
			return "", s.closedErr()
		case <-ctx.Done():
			s.mu.Lock()
			delete(s.joins, room.String())
			s.mu.Unlock()
			return "", fmt.Errorf("xmpp: join %s: no answer from the room: %w", room, ctx.Err())
		}
		if err == nil {
			s.mu.Lock()
			got := s.rooms[room.String()]
			s.mu.Unlock()
			return got, nil
		}
		if !errors.Is(err, stanza.Error{Condition: stanza.Conflict}) || try == 2 {
			return "", fmt.Errorf("xmpp: join %s as %s: %w", room, nick, err)
		}
		s.in.log.Warn("room nick taken; trying another", "room", room.String(), "nick", nick)
		nick += "_"
	}
}

// HandleXMPP implements xmpp.Handler: it runs on the Serve goroutine for
// every top-level element. It never returns an error for a stanza it
// cannot use (that would end the stream); it logs and drops it.
func (s *session) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	// The handler's reader starts after the start element: put it back.
	d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
	switch start.Name.Local {
	case "iq":
		return s.iq.HandleXMPP(t, start)
	case "message":
		var m message
		if err := d.Decode(&m); err != nil {
			s.in.log.Debug("malformed message dropped", "err", err)
			return nil
		}
		s.mu.Lock()
		v := view{self: s.in.self, nick: s.in.nick, prefix: s.in.prefix, rooms: s.rooms, occupants: s.occupants}
		ev, why := normalize(m, v, time.Now())
		s.mu.Unlock()
		if ev == nil {
			s.in.log.Debug("message ignored", "from", m.From, "type", m.Type, "reason", why)
			return nil
		}
		s.in.log.Debug("message received", "from", ev.GetFrom().GetId(), "to", ev.GetTo(), "event", ev.GetId())
		s.in.emit(ev)
	case "presence":
		var p presence
		if err := d.Decode(&p); err != nil {
			s.in.log.Debug("malformed presence dropped", "err", err)
			return nil
		}
		s.presence(p, t)
	}
	return nil
}

type presence struct {
	stanza.Presence
	Err *stanza.Error `xml:"error"`
	X   *struct {
		Item struct {
			JID string `xml:"jid,attr"`
		} `xml:"item"`
		Status []struct {
			Code int `xml:"code,attr"`
		} `xml:"status"`
	} `xml:"http://jabber.org/protocol/muc#user x"`
}

func (p presence) status(code int) bool {
	if p.X == nil {
		return false
	}
	for _, s := range p.X.Status {
		if s.Code == code {
			return true
		}
	}
	return false
}

// presence tracks rooms joined and occupants' real JIDs, and accepts
// subscription requests so that users see the bot online.
func (s *session) presence(p presence, w xmlstream.Encoder) {
	from := p.From
	if p.Type == stanza.SubscribePresence {
		err := w.Encode(stanza.Presence{To: from.Bare(), Type: stanza.SubscribedPresence})
		s.in.log.Debug("presence subscription accepted", "from", from.Bare().String(), "err", err)
		return
	}
	room := from.Bare().String()
	s.mu.Lock()
	defer s.mu.Unlock()
	done := s.joins[room]
	switch {
	case p.Type == stanza.ErrorPresence:
		if done != nil && from.Resourcepart() != "" {
			delete(s.joins, room)
			err := errors.New("error presence")
			if p.Err != nil {
				err = *p.Err
			}
			done <- err
		}
	case p.Type == stanza.AvailablePresence && p.X != nil:
		if p.X.Item.JID != "" {
			s.occupants[from.String()] = p.X.Item.JID
		}
		if p.status(110) { // the room confirms the bot's own presence
			s.rooms[room] = from.Resourcepart()
			if done != nil {
				delete(s.joins, room)
				done <- nil
			}
		}
	case p.Type == stanza.UnavailablePresence && p.X != nil:
		delete(s.occupants, from.String())
		if p.status(110) && s.rooms[room] == from.Resourcepart() {
			delete(s.rooms, room)
			if !s.ending.Load() {
				s.in.log.Warn("removed from room; rejoining on the next reconnect", "room", room)
			}
		}
	}
}

var idSeq struct {
	sync.Mutex
	n uint64
}

// newID returns a stanza id unique within the process.
func newID() string {
	idSeq.Lock()
	defer idSeq.Unlock()
	idSeq.n++
	return fmt.Sprintf("botmesh-%x-%d", time.Now().UnixNano(), idSeq.n)
}

// send sends a stanza (see callctx).
func (s *session) send(ctx context.Context, r xml.TokenReader) error {
	cctx, done := callctx.For(ctx)
	defer done()
	return s.xs.Send(cctx, r)
}
