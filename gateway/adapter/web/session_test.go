package web_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/web"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

// Issue 12: the token admits a person; it does not let them choose who
// they are.

const sessionToken = "correct horse battery staple"

// oldTicket is the ticket for id as the gateway made them before issue 12:
// an HMAC of the id with a key derived from the token, which anyone with
// the token could compute for any id.
func oldTicket(token, id string) string {
	k := hmac.New(sha256.New, []byte(token))
	k.Write([]byte("botmesh web session key v1"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(id))
	return id + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// refusedSession says hello with a ticket the server must not honour, and
// checks that the connection gets no identity: an unknown_session error,
// no welcome, and a message after it is refused as one before a hello.
// It returns the connection, still open and waiting for a hello.
func refusedSession(t *testing.T, srv *httptest.Server, hello map[string]any) *browser {
	t.Helper()
	b, _, err := dial(t, srv, http.Header{"Origin": {srv.URL}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	hello["type"] = "hello"
	b.send(hello)
	if f := b.next(); f.Type != "error" || f.Code != web.CodeUnknownSession || f.User != "" || f.Session != "" {
		t.Fatalf("ticket %q: %+v, want an %s error and no identity", hello["session"], f, web.CodeUnknownSession)
	}
	b.send(map[string]any{"type": "message", "id": "m1", "text": "whoami"})
	if f := b.next(); f.Type != "error" || f.Code != web.CodeNoHello {
		t.Fatalf("ticket %q: a message after the refusal: %+v, want %s", hello["session"], f, web.CodeNoHello)
	}
	return b
}

// noEvent fails the test if the input takes a message within d.
func noEvent(t *testing.T, in *web.Input, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if ev, err := in.Recv(ctx); err == nil {
		t.Fatalf("a message got through: %+v", ev)
	}
}

// waitClosed waits until the input has no open websocket, so that their
// sessions are released.
func waitClosed(t *testing.T, in *web.Input) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); in.Live() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d websockets still open", in.Live())
		}
	}
}

// A session the server did not issue gives no identity: not one made from
// the token the old way, not a chosen id, not a known id with any secret
// but its own.
func TestForgedSessionRefused(t *testing.T) {
	logs := &logBuffer{}
	in, err := initInputLog(t, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), "--web_token", sessionToken)
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, in)
	_, wa := open(t, srv, map[string]any{"token": sessionToken, "conversation": "tab"})
	_, wb := open(t, srv, map[string]any{"token": sessionToken, "conversation": "tab"})
	idA, secretA, _ := strings.Cut(wa.Session, ".")
	_, secretB, _ := strings.Cut(wb.Session, ".")
	if wa.User != "web:"+idA {
		t.Fatalf("welcome %+v: want user web:<id> and a ticket <id>.<secret>", wa)
	}
	t.Cleanup(func() {
		for _, secret := range []string{sessionToken[:8], secretA, secretB} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("a secret reached the log:\n%s", logs.String())
			}
		}
	})

	for _, tc := range []struct{ name, ticket string }{
		{"victim's id, old HMAC from the token", oldTicket(sessionToken, idA)},
		{"chosen id, old HMAC from the token", oldTicket(sessionToken, "admin")},
		{"victim's id, no secret", idA},
		{"victim's id, empty secret", idA + "."},
		{"victim's id, made-up secret", idA + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"victim's id, the forger's own secret", idA + "." + secretB},
		{"victim's id, secret cut short", idA + "." + secretA[:len(secretA)-1]},
		{"chosen id, no secret", "admin"},
		{"chosen id, the forger's own secret", "admin." + secretB},
		{"own ticket, altered", wb.Session + "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := refusedSession(t, srv, map[string]any{"token": sessionToken, "session": tc.ticket, "conversation": "tab"})
			noEvent(t, in, 50*time.Millisecond)
			// The same connection may then ask for a session of its own:
			// a new user, not the one it tried to be.
			b.send(map[string]any{"type": "hello", "token": sessionToken, "conversation": "tab"})
			w := b.next()
			if w.Type != "welcome" || w.User == wa.User || w.User == wb.User || w.User == "web:admin" || w.Session == tc.ticket {
				t.Fatalf("hello without a ticket after the refusal: %+v", w)
			}
			b.send(map[string]any{"type": "message", "id": "m1", "text": "whoami"})
			if ev := recv(t, in); ev.GetFrom().GetId() != w.User {
				t.Fatalf("message from %s, want %s", ev.GetFrom().GetId(), w.User)
			}
		})
	}
	if len(secretA) < 43 {
		t.Errorf("ticket %q: the secret is shorter than 256 bits", wa.Session)
	}
	for _, want := range []string{`msg="hello refused: wrong session secret"`, `msg="hello refused: unknown or expired session"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log has no %s:\n%s", want, logs.String())
		}
	}
}

// Two people given the same token are two users; the second, who knows the
// token and the first one's user id (which the mesh shows), cannot become
// the first.
func TestSameTokenDifferentPeople(t *testing.T) {
	in := newInput(t, "--web_token", sessionToken)
	srv := serve(t, in)
	alice, wa := open(t, srv, map[string]any{"token": sessionToken, "conversation": "tab"})
	bob, wb := open(t, srv, map[string]any{"token": sessionToken, "conversation": "tab"})
	if wa.User == wb.User || wa.Session == wb.Session || wa.Name == "" || wa.Name == wb.Name {
		t.Fatalf("one token, one identity: %+v / %+v", wa, wb)
	}
	alice.send(map[string]any{"type": "message", "id": "m1", "text": "deploy"})
	evA := recv(t, in)
	bob.send(map[string]any{"type": "message", "id": "m1", "text": "deploy"})
	evB := recv(t, in)
	if evA.GetFrom().GetId() != wa.User || evB.GetFrom().GetId() != wb.User {
		t.Fatalf("events from %s and %s, want %s and %s", evA.GetFrom().GetId(), evB.GetFrom().GetId(), wa.User, wb.User)
	}
	refusedSession(t, srv, map[string]any{"token": sessionToken, "session": oldTicket(sessionToken, strings.TrimPrefix(evA.GetFrom().GetId(), "web:"))})
	noEvent(t, in, 50*time.Millisecond)
}

// A session's ticket brings its user back after a reconnect, with the
// conversation's replies it missed; a second connection may use it at the
// same time (a duplicated tab).
func TestSessionResumes(t *testing.T) {
	in := newInput(t, "--web_token", sessionToken)
	srv := serve(t, in)
	b, w := open(t, srv, map[string]any{"token": sessionToken, "conversation": "tab"})
	b.send(map[string]any{"type": "message", "id": "m1", "text": "ping"})
	ev := recv(t, in)
	b.next() // ack
	b.ws.Close()
	waitClosed(t, in)
	answer(t, in, ev, chatopsv1.EventType_EVENT_TYPE_REPLY, "r1", "pong")

	b2, w2 := open(t, srv, map[string]any{"token": sessionToken, "session": w.Session, "conversation": "tab", "epoch": w.Epoch})
	if w2.User != w.User || w2.Session != w.Session || w2.Name != w.Name || w2.Epoch != w.Epoch {
		t.Fatalf("after a reconnect: %+v, want the session of %+v", w2, w)
	}
	if f := b2.next(); f.Text != "pong" || f.InReplyTo != "m1" {
		t.Fatalf("the reply that came while away: %+v", f)
	}
	b3, w3 := open(t, srv, map[string]any{"token": sessionToken, "session": w.Session, "conversation": "tab2"})
	if w3.User != w.User {
		t.Fatalf("a second tab with the ticket is %s, want %s", w3.User, w.User)
	}
	b2.send(map[string]any{"type": "message", "id": "m2", "text": "ping"})
	b3.send(map[string]any{"type": "message", "id": "m3", "text": "ping"})
	for range 2 {
		if ev := recv(t, in); ev.GetFrom().GetId() != w.User {
			t.Fatalf("message from %s, want %s", ev.GetFrom().GetId(), w.User)
		}
	}
	// The ticket still needs the token.
	b4, _, err := dial(t, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	b4.send(map[string]any{"type": "hello", "session": w.Session})
	if f := b4.next(); f.Code != web.CodeUnauthorized {
		t.Fatalf("a ticket without the token: %+v, want %s", f, web.CodeUnauthorized)
	}
}

// A session is forgotten SessionTTL after its last connection closed, not
// while one is open; then its ticket gives no identity.
func TestSessionExpires(t *testing.T) {
	in := newInput(t)
	srv := serve(t, in)
	b, w := open(t, srv, nil)
	in.PassTime(2 * web.SessionTTL)
	b2, w2 := open(t, srv, map[string]any{"session": w.Session})
	if w2.User != w.User {
		t.Fatalf("a session in use expired: %s, want %s", w2.User, w.User)
	}
	b.ws.Close()
	b2.ws.Close()
	waitClosed(t, in)
	in.PassTime(web.SessionTTL - time.Minute)
	b3, w3 := open(t, srv, map[string]any{"session": w.Session})
	if w3.User != w.User {
		t.Fatalf("a session expired early: %s, want %s", w3.User, w.User)
	}
	b3.ws.Close()
	waitClosed(t, in)
	in.PassTime(web.SessionTTL + time.Minute)
	refusedSession(t, srv, map[string]any{"session": w.Session})
	if n := in.Sessions(); n != 0 {
		t.Errorf("%d sessions remembered after the only one expired", n)
	}
}

// Listening beyond loopback, only the hosts the chat answers to are
// served: a DNS-rebinding page's Host is refused (421), and logged.
func TestHostBeyondLoopback(t *testing.T) {
	logs := &logBuffer{}
	// The handler is served on 127.0.0.1 (tests stay on loopback), with the
	// flags of a gateway listening on every interface.
	in, err := initInputLog(t, slog.New(slog.NewTextHandler(logs, nil)), "--web_address", "0.0.0.0:8080", "--web_token", sessionToken,
		"--web_origins", "https://proxy.example.net")
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, in)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"evil.example:" + port, false},
		{"evil.example", false},
		{"chat.example.com.evil.example", false},
		{"evil.example.chat.example.com", false},
		{"0x7f000001", false},
		{"localhost:" + port, true},
		{"LOCALHOST.:" + port, true},
		{"127.0.0.1:" + port, true},
		{"[::1]:" + port, true},
		{"proxy.example.net", true},
		{"Proxy.Example.Net.:443", true},
		// An address: a rebinding page's Host is its DNS name, never one.
		{"192.0.2.7:" + port, true},
		{"[2001:db8::7]:" + port, true},
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		req.Host = tc.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: http.StatusOK, false: http.StatusMisdirectedRequest}[tc.ok]; resp.StatusCode != want {
			t.Errorf("Host %q: status %d, want %d", tc.host, resp.StatusCode, want)
		}
	}

	// The websocket too, before any hello: the rebinding page gets no
	// session even with the token.
	h := http.Header{"Host": {"evil.example:" + port}, "Origin": {"http://evil.example:" + port}}
	_, resp, err := dial(t, srv, h)
	if err == nil || resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("websocket with a foreign Host: %v, want 421", err)
	}
	if n := in.Sessions(); n != 0 {
		t.Errorf("%d sessions issued", n)
	}
	h = http.Header{"Host": {"proxy.example.net"}, "Origin": {"https://proxy.example.net"}}
	b, _, err := dial(t, srv, h)
	if err != nil {
		t.Fatalf("websocket with an allowed Host: %v", err)
	}
	b.send(map[string]any{"type": "hello", "token": sessionToken})
	if f := b.next(); f.Type != "welcome" {
		t.Fatalf("hello: %+v", f)
	}

	if s := logs.String(); !strings.Contains(s, `msg="request refused: Host not allowed (see --web_allowed_hosts)" host=evil.example:`) || strings.Contains(s, sessionToken[:8]) {
		t.Errorf("log:\n%s", s)
	}
}

// The hosts served by default: the --web_address host and localhost;
// besides, those of --web_allowed_hosts (any with *).
func TestAllowedHosts(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		host string
		ok   bool
	}{
		{"listen address", []string{"--web_address", "192.0.2.10:8080"}, "192.0.2.10:8080", true},
		{"listen address, other port", []string{"--web_address", "192.0.2.10:8080"}, "192.0.2.10", true},
		{"another address", []string{"--web_address", "192.0.2.10:8080"}, "192.0.2.11:8080", false},
		{"localhost", []string{"--web_address", "192.0.2.10:8080"}, "localhost:8080", true},
		{"a name", []string{"--web_address", "192.0.2.10:8080"}, "chat.example.com", false},
		{"listen name", []string{"--web_address", "chat.example.com:8080"}, "chat.example.com:8080", true},
		{"every interface, a name", []string{"--web_address", ":8080"}, "evil.example:8080", false},
		{"every interface, IPv6", []string{"--web_address", "[::]:8080"}, "evil.example:8080", false},
		{"allowed", []string{"--web_address", "0.0.0.0:8080", "--web_allowed_hosts", "chat.example.com, Ops.Example.Org:8443"}, "Chat.Example.Com.:443", true},
		{"allowed, port ignored", []string{"--web_address", "0.0.0.0:8080", "--web_allowed_hosts", "chat.example.com, Ops.Example.Org:8443"}, "ops.example.org", true},
		{"allowed, a subdomain", []string{"--web_address", "0.0.0.0:8080", "--web_allowed_hosts", "chat.example.com"}, "evil.chat.example.com", false},
		{"star", []string{"--web_address", "0.0.0.0:8080", "--web_allowed_hosts", "*"}, "evil.example:8080", true},
		// On loopback as before issue 12, plus --web_allowed_hosts (a
		// proxy on the same machine).
		{"loopback, foreign", nil, "evil.example:8080", false},
		{"loopback, an address", nil, "192.0.2.7:8080", false},
		{"loopback, allowed", []string{"--web_allowed_hosts", "chat.example.com"}, "chat.example.com", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInput(t, append([]string{"--web_allow_anonymous"}, tc.args...)...)
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/", nil)
			req.Host = tc.host
			in.Handler().ServeHTTP(rec, req)
			if got := rec.Code != http.StatusMisdirectedRequest; got != tc.ok {
				t.Errorf("Host %q: %d, want served %v", tc.host, rec.Code, tc.ok)
			}
		})
	}
	for _, bad := range []string{"https://chat.example.com", "chat.example.com/", "*.example.com", "user@chat.example.com", "chat.example.com:"} {
		if _, err := initInput(t, "--web_allowed_hosts", bad); err == nil || !strings.HasPrefix(err.Error(), "web: --web_allowed_hosts: ") {
			t.Errorf("--web_allowed_hosts %q: %v, want an error", bad, err)
		}
	}
}
