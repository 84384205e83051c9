package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/web"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/gorilla/websocket"
)

// newInput returns a web input Init'ed with the given command-line flags.
func newInput(t *testing.T, args ...string) *web.Input {
	t.Helper()
	in, err := initInput(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func initInput(t *testing.T, args ...string) (*web.Input, error) {
	t.Helper()
	return initInputLog(t, meshtest.Logger(t), args...)
}

func initInputLog(t *testing.T, log *slog.Logger, args ...string) (*web.Input, error) {
	t.Helper()
	in := web.NewInput()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	in.Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return in, in.Init(adapter.Env{Log: log})
}

// logBuffer collects a log to check what reached it.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve serves in's handler on an httptest server, as Start would on
// --web_address.
func serve(t *testing.T, in *web.Input) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(in.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := in.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		srv.Close()
	})
	return srv
}

// frame is a frame from the server, as the page sees it.
type frame struct {
	Type         string `json:"type"`
	Session      string `json:"session"`
	User         string `json:"user"`
	Name         string `json:"name"`
	Conversation string `json:"conversation"`
	Epoch        string `json:"epoch"`
	MaxFrame     int    `json:"max_frame"`
	InReplyTo    string `json:"in_reply_to"`
	ID           string `json:"id"`
	Seq          uint64 `json:"seq"`
	Kind         string `json:"kind"`
	Text         string `json:"text"`
	MeshDown     bool   `json:"mesh_down"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	Missed       uint64 `json:"missed"`
}

// browser is a websocket client that plays the page.
type browser struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, srv *httptest.Server, h http.Header) (*browser, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{web.Subprotocol}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+web.WebsocketPath, h)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { ws.Close() })
	return &browser{t: t, ws: ws}, resp, nil
}

// open connects and says hello with the given fields, returning the
// welcome.
func open(t *testing.T, srv *httptest.Server, hello map[string]any) (*browser, frame) {
	t.Helper()
	b, _, err := dial(t, srv, http.Header{"Origin": {srv.URL}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if hello == nil {
		hello = map[string]any{}
	}
	hello["type"] = "hello"
	b.send(hello)
	w := b.next()
	if w.Type != "welcome" {
		t.Fatalf("first frame %+v, want a welcome", w)
	}
	return b, w
}

func (b *browser) send(v any) {
	b.t.Helper()
	if err := b.ws.WriteJSON(v); err != nil {
		b.t.Fatalf("send: %v", err)
	}
}

func (b *browser) sendRaw(typ int, data []byte) {
	b.t.Helper()
	if err := b.ws.WriteMessage(typ, data); err != nil {
		b.t.Fatalf("send: %v", err)
	}
}

func (b *browser) read(within time.Duration) (frame, error) {
	_ = b.ws.SetReadDeadline(time.Now().Add(within))
	var f frame
	_, data, err := b.ws.ReadMessage()
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(data, &f); err != nil {
		b.t.Fatalf("server sent a frame that is not JSON: %q", data)
	}
	return f, nil
}

func (b *browser) next() frame {
	b.t.Helper()
	f, err := b.read(5 * time.Second)
	if err != nil {
		b.t.Fatalf("no frame: %v", err)
	}
	return f
}

// silent fails the test if a frame arrives within d.
func (b *browser) silent(d time.Duration) {
	b.t.Helper()
	if f, err := b.read(d); err == nil {
		b.t.Fatalf("unexpected frame %+v", f)
	}
}

func recv(t *testing.T, in *web.Input) *chatopsv1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := in.Recv(ctx)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return ev
}

func answer(t *testing.T, in *web.Input, ev *chatopsv1.Event, typ chatopsv1.EventType, id, text string) {
	t.Helper()
	err := in.Send(context.Background(), &chatopsv1.Event{
		Id: id, Type: typ, Data: []byte(text),
		To: ev.GetTo(), Meta: ev.GetMeta(), InReplyTo: ev.GetId(), Platform: web.Name,
	})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	in := newInput(t)
	srv := serve(t, in)
	b, w := open(t, srv, nil)
	if !strings.HasPrefix(w.User, "web:") || w.Session == "" || w.Conversation == "" || w.Epoch == "" || w.MaxFrame != web.DefaultMaxFrame {
		t.Fatalf("welcome %+v", w)
	}

	b.send(map[string]any{"type": "message", "id": "m1", "text": "ping"})
	ev := recv(t, in)
	if string(ev.Data) != "ping" || ev.GetFrom().GetId() != w.User || ev.GetFrom().GetBot() || ev.To == "" || ev.Type != chatopsv1.EventType_EVENT_TYPE_MESSAGE {
		t.Fatalf("event %+v", ev)
	}
	if !strings.HasSuffix(ev.Id, ":m1") {
		t.Errorf("event id %q does not keep the page's message id (resends must keep it)", ev.Id)
	}
	if f := b.next(); f.Type != "ack" || f.InReplyTo != "m1" {
		t.Fatalf("after the message: %+v, want its ack", f)
	}

	answer(t, in, ev, chatopsv1.EventType_EVENT_TYPE_PROGRESS, "p1", "looking…")
	answer(t, in, ev, chatopsv1.EventType_EVENT_TYPE_REPLY, "r1", "NAME\tVERSION\necho\tlatest")
	if f := b.next(); f.Type != "reply" || f.Kind != "progress" || f.InReplyTo != "m1" || f.Text != "looking…" || f.Seq != 1 {
		t.Errorf("progress frame %+v", f)
	}
	if f := b.next(); f.Type != "reply" || f.Kind != "reply" || f.InReplyTo != "m1" || f.Text != "NAME\tVERSION\necho\tlatest" || f.ID != "r1" || f.Seq != 2 || f.MeshDown {
		t.Errorf("reply frame %+v", f)
	}

	b.send(map[string]any{"type": "message", "id": "m2", "text": "ping"})
	ev = recv(t, in)
	b.next() // ack
	answer(t, in, ev, chatopsv1.EventType_EVENT_TYPE_ERROR, "e1", "no router is running: nothing answers on bot.v1.in.web")
	if f := b.next(); f.Kind != "error" || f.InReplyTo != "m2" || !f.MeshDown || !strings.HasPrefix(f.Text, "no router is running") {
		t.Errorf("gateway error frame %+v: want kind error, mesh_down", f)
	}
	b.send(map[string]any{"type": "message", "id": "m3", "text": "ehco"})
	ev = recv(t, in)
	b.next() // ack
	answer(t, in, ev, chatopsv1.EventType_EVENT_TYPE_ERROR, "e2", `unknown command "ehco".`)
	if f := b.next(); f.Kind != "error" || f.MeshDown {
		t.Errorf("router error frame %+v: want kind error, not mesh_down", f)
	}
}

func TestSessionsIsolated(t *testing.T) {
	in := newInput(t)
	srv := serve(t, in)
	a, wa := open(t, srv, map[string]any{"conversation": "tab-a"})
	b, wb := open(t, srv, map[string]any{"conversation": "tab-a"}) // same tab id, other browser
	if wa.User == wb.User || wa.Session == wb.Session {
		t.Fatalf("two browsers share an identity: %q %q", wa.User, wb.User)
	}
	a.send(map[string]any{"type": "message", "id": "x", "text": "from a"})
	evA := recv(t, in)
	a.next() // ack
	b.send(map[string]any{"type": "message", "id": "x", "text": "from b"})
	evB := recv(t, in)
	b.next() // ack
	if evA.To == evB.To || evA.Id == evB.Id || evA.From.Id == evB.From.Id {
		t.Fatalf("events not kept apart: %+v / %+v", evA, evB)
	}
	answer(t, in, evB, chatopsv1.EventType_EVENT_TYPE_REPLY, "rb", "for b")
	answer(t, in, evA, chatopsv1.EventType_EVENT_TYPE_REPLY, "ra", "for a")
	if f := a.next(); f.Text != "for a" {
		t.Errorf("a got %+v", f)
	}
	if f := b.next(); f.Text != "for b" {
		t.Errorf("b got %+v", f)
	}
	a.silent(200 * time.Millisecond)
	b.silent(10 * time.Millisecond)

	// A forged ticket (a's id with a made-up secret) gives no identity
	// (session_test.go has the other forgeries).
	id, _, _ := strings.Cut(wa.Session, ".")
	refusedSession(t, srv, map[string]any{"session": id + ".AAAAAAAAAAAAAAAAAAAAAAAA", "conversation": "tab-a"})
	// The real ticket keeps the identity.
	_, wr := open(t, srv, map[string]any{"session": wa.Session, "conversation": "tab-a"})
	if wr.User != wa.User {
		t.Fatalf("ticket not honoured: %s, want %s", wr.User, wa.User)
	}
}

// A reply that comes while the tab is away (a reload) waits for it; a tab
// that has it does not get it twice.
func TestReloadGetsMissedReplies(t *testing.T) {
	in := newInput(t)
	srv := serve(t, in)
	b, w := open(t, srv, map[string]any{"conversation": "tab"})
	b.send(map[string]any{"type": "message", "id": "m1", "text": "slow"})
	ev := recv(t, in)
	b.next() // ack
	b.ws.Close()
	answer(t, in, ev, chatopsv1.EventType_EVENT_TYPE_REPLY, "r1", "done at last")

	b2, w2 := open(t, srv, map[string]any{"session": w.Session, "conversation": "tab", "epoch": w.Epoch, "seen": 0})
	if w2.User != w.User || w2.Epoch != w.Epoch {
		t.Fatalf("after reload: %+v, want the same user and epoch as %+v", w2, w)
	}
	if f := b2.next(); f.Type != "reply" || f.Text != "done at last" || f.InReplyTo != "m1" || f.Seq != 1 {
		t.Fatalf("after reload: %+v, want the missed reply", f)
	}
	b2.ws.Close()

	b3, _ := open(t, srv, map[string]any{"session": w.Session, "conversation": "tab", "epoch": w.Epoch, "seen": 1})
	b3.silent(200 * time.Millisecond)
}

func TestOversizeFrame(t *testing.T) {
	const limit = 2048
	in := newInput(t, "--web_max_frame", "2048")
	srv := serve(t, in)
	b, w := open(t, srv, nil)
	if w.MaxFrame != limit {
		t.Fatalf("welcome max_frame %d, want %d", w.MaxFrame, limit)
	}
	big := `{"type":"message","id":"big","text":"` + strings.Repeat("y", 3000) + `"}`
	b.sendRaw(websocket.TextMessage, []byte(big))
	if f := b.next(); f.Type != "error" || f.Code != "too_big" || f.Message != fmt.Sprintf("frame of %d bytes refused: the limit is 2048", len(big)) {
		t.Fatalf("oversize frame: %+v", f)
	}
	// The connection still works.
	b.send(map[string]any{"type": "message", "id": "ok", "text": "after"})
	if ev := recv(t, in); string(ev.Data) != "after" {
		t.Fatalf("after the big frame: %q", ev.Data)
	}
	if f := b.next(); f.Type != "ack" || f.InReplyTo != "ok" {
		t.Fatalf("after the big frame: %+v", f)
	}
	// Past 4 times the limit the connection is closed: 1009.
	b.sendRaw(websocket.TextMessage, []byte(strings.Repeat("z", 4*limit+1)))
	_, err := b.read(5 * time.Second)
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("huge frame: %v, want close 1009", err)
	}
}

func TestBadFrames(t *testing.T) {
	in := newInput(t)
	srv := serve(t, in)
	b, _ := open(t, srv, nil)
	for _, tc := range []struct {
		name, frame string
		binary      bool
		code, msg   string
		about       string
	}{
		{name: "not JSON", frame: "ping", code: "bad_frame", msg: "not a JSON object: syntax error at byte 1"},
		{name: "cut short", frame: `{"type":"message","id":"a"`, code: "bad_frame", msg: "not a JSON object: the frame is cut short"},
		{name: "array", frame: `[1,2]`, code: "bad_frame", msg: "not a JSON object: the frame must be a JSON object"},
		{name: "wrong field type", frame: `{"type":"message","id":"a","text":5}`, code: "bad_frame", msg: `not a JSON object: field "text" must be a string`},
		{name: "two values", frame: `{"type":"message","id":"a","text":"x"} {}`, code: "bad_frame", msg: "more than one JSON value in the frame"},
		{name: "no type", frame: `{"text":"x"}`, code: "bad_frame", msg: `the frame has no "type"`},
		{name: "unknown type", frame: `{"type":"shout"}`, code: "bad_frame", msg: `unknown frame type "shout"`},
		{name: "bad id", frame: `{"type":"message","id":"a b","text":"x"}`, code: "bad_frame", msg: "message id must be 1 to 64 letters, digits, - or _"},
		{name: "empty text", frame: `{"type":"message","id":"e1","text":" \n "}`, code: "empty", msg: "empty message: nothing to send", about: "e1"},
		{name: "second hello", frame: `{"type":"hello"}`, code: "bad_frame", msg: "hello twice: this connection's session is open"},
		{name: "binary", frame: "\x00\x01", binary: true, code: "bad_frame", msg: "binary frames are not understood: send JSON text frames"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ := websocket.TextMessage
			if tc.binary {
				typ = websocket.BinaryMessage
			}
			b.sendRaw(typ, []byte(tc.frame))
			f := b.next()
			if f.Type != "error" || f.Code != tc.code || f.Message != tc.msg || f.InReplyTo != tc.about {
				t.Errorf("got %+v, want error %s %q about %q", f, tc.code, tc.msg, tc.about)
			}
		})
	}
	// Nothing reached the gateway, and the connection still works.
	b.send(map[string]any{"type": "message", "id": "good", "text": "still here"})
	if ev := recv(t, in); string(ev.Data) != "still here" {
		t.Fatalf("after bad frames the gateway got %q", ev.Data)
	}
}

func TestMessageBeforeHello(t *testing.T) {
	in := newInput(t)
	srv := serve(t, in)
	b, _, err := dial(t, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.send(map[string]any{"type": "message", "id": "m0", "text": "ping"})
	if f := b.next(); f.Type != "error" || f.Code != "no_hello" || f.InReplyTo != "m0" {
		t.Fatalf("message before hello: %+v", f)
	}
	b.send(map[string]any{"type": "hello"})
	if f := b.next(); f.Type != "welcome" {
		t.Fatalf("hello after a refused message: %+v", f)
	}
}

func TestToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		token string
	}{
		{"flag", []string{"--web_token", "s3cret"}, "s3cret"},
		{"file", []string{"--web_token_file", file}, "s3cret-from-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuffer{}
			in, err := initInputLog(t, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				// Cleanups run last in first out: this one after serve's
				// Stop, so the whole log is in.
				if strings.Contains(logs.String(), tc.token[:5]) {
					t.Errorf("a token reached the log:\n%s", logs.String())
				}
				if !strings.Contains(logs.String(), "websocket refused: wrong token") {
					t.Errorf("refusals not logged:\n%s", logs.String())
				}
			})
			srv := serve(t, in)
			for _, bad := range []string{"", "wrong", tc.token + "x", tc.token[:len(tc.token)-1]} {
				b, _, err := dial(t, srv, nil)
				if err != nil {
					t.Fatal(err)
				}
				b.send(map[string]any{"type": "hello", "token": bad})
				f := b.next()
				if f.Type != "error" || f.Code != "unauthorized" {
					t.Fatalf("token %q: %+v, want unauthorized", bad, f)
				}
				if _, err := b.read(5 * time.Second); !websocket.IsCloseError(err, web.CloseUnauthorized) {
					t.Fatalf("token %q: %v, want close %d", bad, err, web.CloseUnauthorized)
				}
			}
			_, w := open(t, srv, map[string]any{"token": tc.token})
			if !strings.HasPrefix(w.User, "web:") {
				t.Fatalf("right token: %+v", w)
			}
		})
	}
}

func TestInitChecks(t *testing.T) {
	file := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(file, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		err  string // "" for none
	}{
		{[]string{"--web_address", "0.0.0.0:0"}, "web: --web_address 0.0.0.0:0 is reachable from other hosts: set --web_token"},
		{[]string{"--web_address", ":8080"}, "web: --web_address :8080 is reachable from other hosts"},
		{[]string{"--web_address", "0.0.0.0:0", "--web_allow_anonymous"}, ""},
		{[]string{"--web_address", "0.0.0.0:0", "--web_token", "t"}, ""},
		{[]string{"--web_address", "localhost:0"}, ""},
		{[]string{"--web_address", "[::1]:0"}, ""},
		{[]string{"--web_address", "nope"}, "web: --web_address \"nope\""},
		{[]string{"--web_token", "a", "--web_token_file", file}, "web: give --web_token or --web_token_file, not both"},
		{[]string{"--web_token_file", file}, "web: token file " + file + " is empty"},
		{[]string{"--web_token_file", file + "-missing"}, "web: token file: open "},
		{[]string{"--web_origins", "chat.example.com"}, `web: --web_origins: "chat.example.com" is not an origin`},
		{[]string{"--web_max_frame", "10"}, "web: --web_max_frame 10 is too small"},
	} {
		_, err := initInput(t, tc.args...)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want %q…", tc.args, err, tc.err)
		}
	}
}

func TestOriginAndHost(t *testing.T) {
	in := newInput(t, "--web_origins", "https://chat.example.com")
	srv := serve(t, in)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{srv.URL, true},
		{"http://" + strings.ToUpper(host), true},
		{"https://chat.example.com", true},
		{"http://evil.example", false},
		{"http://" + host + ".evil.example", false},
		{"null", false},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		b, resp, err := dial(t, srv, h)
		if tc.ok {
			if err != nil {
				t.Errorf("origin %q refused: %v", tc.origin, err)
				continue
			}
			b.ws.Close()
			continue
		}
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: %v, want 403", tc.origin, err)
		}
	}

	// DNS rebinding: a page from evil.example whose name resolves to
	// 127.0.0.1 sends Host: evil.example:port. Refused.
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	_, port, _ := net.SplitHostPort(host)
	req.Host = "evil.example:" + port
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: status %d, want 421", resp.StatusCode)
	}

	// No subprotocol: refused with a word on what is missing.
	d := websocket.Dialer{}
	_, resp, err = d.Dial("ws://"+host+web.WebsocketPath, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("without subprotocol: %v, want 400", err)
	}
}

func TestPage(t *testing.T) {
	in := newInput(t)
	srv := serve(t, in)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := get("/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `<textarea id="input"`) {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	// Nothing is loaded from elsewhere, and nothing is inline (the CSP
	// would block it).
	if m := regexp.MustCompile(`(?i)(src|href)="(https?:)?//|<script>|<style|\sstyle="|\son[a-z]+="`).FindString(body); m != "" {
		t.Errorf("index.html has %q", m)
	}
	resp, js := get("/app.js")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("GET /app.js: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The page builds its DOM with textContent only.
	if m := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|\.html\(`).FindString(js); m != "" {
		t.Errorf("app.js uses %s: untrusted text must be set with textContent", m)
	}
	if resp, _ := get("/app.css"); resp.StatusCode != 200 {
		t.Errorf("GET /app.css: %d", resp.StatusCode)
	}
	if resp, _ := get("/nope"); resp.StatusCode != 404 {
		t.Errorf("GET /nope: %d", resp.StatusCode)
	}
	resp, _ = get(web.WebsocketPath)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET %s without upgrade: %d", web.WebsocketPath, resp.StatusCode)
	}
}

func TestStartHealthyStop(t *testing.T) {
	in := newInput(t, "--web_address", "127.0.0.1:0")
	if err := in.Healthy(); err == nil {
		t.Fatal("healthy before Start")
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := in.Healthy(); err != nil {
		t.Fatalf("after Start: %v", err)
	}
	resp, err := http.Get(in.URL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	d := websocket.Dialer{Subprotocols: []string{web.Subprotocol}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(in.URL(), "http")+"ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"type": "hello"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}

	recvErr := make(chan error, 1)
	go func() {
		_, err := in.Recv(context.Background())
		recvErr <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := in.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("open tab after Stop: %v, want close 1001", err)
	}
	if err := <-recvErr; !errors.Is(err, adapter.ErrClosed) {
		t.Errorf("Recv after Stop: %v", err)
	}
	if err := in.Healthy(); err == nil {
		t.Error("healthy after Stop")
	}
	if _, err := http.Get(in.URL()); err == nil {
		t.Error("still serving after Stop")
	}
}

// Issue 13: an address another program listens on fails Start with a
// sentence naming the address and the flag that moves the chat; the input
// does not say it listens.
func TestStartAddressInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	in := newInput(t, "--web_address", busy.Addr().String())
	err = in.Start(context.Background())
	want := "the web chat cannot listen on " + busy.Addr().String() + ": the address is in use (by another botmesh, or another program); set --web_address (or BOTMESH_WEB_ADDRESS) to a free address (port 0: any free port)"
	if err == nil || err.Error() != want {
		t.Fatalf("Start on a taken address: %v\nwant: %s", err, want)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("the error does not wrap EADDRINUSE: %#v", err)
	}
	select {
	case <-in.Listening():
		t.Error("Listening is closed although Start failed")
	default:
	}
	if err := in.Healthy(); err == nil {
		t.Error("healthy although Start failed")
	}
}
