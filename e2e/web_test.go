package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/web"
	"github.com/botmesh/botmesh/internal/allinone"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
)

// webChromium is Debian's chromium, which CI installs.
const webChromium = "/usr/bin/chromium"

// webInput returns a web input Init'ed with the given flags.
func webInput(t *testing.T, args ...string) *web.Input {
	t.Helper()
	in := web.NewInput()
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	in.Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := in.Init(adapter.Env{Log: meshtest.Logger(t).With("input", "web")}); err != nil {
		t.Fatal(err)
	}
	return in
}

// webURL waits until in listens and returns its page's URL.
func webURL(t *testing.T, in *web.Input) string {
	t.Helper()
	select {
	case <-in.Listening():
		return in.URL()
	case <-time.After(20 * time.Second):
		t.Fatal("the web input is not listening after 20s")
		return ""
	}
}

// webAllInOne runs the all-in-one with in as its only input; the returned
// func stops it (it is also stopped when the test ends).
func webAllInOne(t *testing.T, in *web.Input) (stop func()) {
	t.Helper()
	cfg := allinone.Config{
		Mesh: mesh.DefaultConfig(), NATSHost: "127.0.0.1", NATSPort: -1,
		Router:  router.Config{Timeout: 5 * time.Second},
		Gateway: gateway.Config{ReplyTimeout: 10 * time.Second},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- allinone.Run(ctx, cfg, []adapter.Input{in}, meshtest.Logger(t), nil) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("all-in-one: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("all-in-one did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// webBrowser starts a headless Chromium and returns the context of its
// first tab, with the given extra options. A missing browser fails the
// test: a skip would pass for a test that did not run.
func webBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(webChromium); err != nil {
		t.Fatalf("this test drives a real browser and needs Debian's chromium at %s (apt-get install chromium; .ci/run installs it): %v", webChromium, err)
	}
	// Not t.TempDir: Chromium's helpers may still write to the profile for
	// a moment after the browser exits, which fails TempDir's clean-up.
	profile, err := os.MkdirTemp("", "botmesh-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(webChromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1000, 760),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		// chromedp v0.16 does not know the DOM events of newer browsers
		// (the <dialog> top layer); those are noise.
		if !strings.HasPrefix(format, "unhandled node event") {
			t.Logf(format, args...)
		}
	}))
	began := time.Now()
	if err := chromedp.Run(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		_ = os.RemoveAll(profile)
		t.Fatalf("start %s: %v", webChromium, err)
	}
	t.Logf("chromium started in %s", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("close chromium: %v", err)
		}
		cancelTab()
		cancelAlloc()
		for i := 0; os.RemoveAll(profile) != nil && i < 50; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	return ctx
}

// webTab opens another tab in the browser of ctx.
func webTab(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	// The first Run opens the tab and ties it to the context it is given:
	// give it the tab's own, not one with a timeout.
	if err := chromedp.Run(tab); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return tab
}

func webRun(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// webOpen loads the page and waits until it says it is connected.
func webOpen(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	webRun(t, ctx, "open "+url, chromedp.Navigate(url), webWait(`document.body.dataset.conn === "connected"`))
}

func webWait(expr string) chromedp.Action {
	var ok bool
	return chromedp.Poll(expr, &ok, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(25*time.Second))
}

// webAnswer is a reply as the page shows it.
type webAnswer struct {
	Kind  string `json:"kind"`  // reply, error, progress, pending
	Label string `json:"label"` // "ERROR" over errors
	Text  string `json:"text"`  // what is shown, as the user sees it
	Block bool   `json:"block"` // shown as a monospace block
	Font  string `json:"font"`  // its font family
}

// webAnswerJS returns the shown answer to the user's message number n
// (0-based) once final (final) or as soon as shown (!final), else null.
func webAnswerJS(n int, final bool) string {
	return fmt.Sprintf(`(() => {
	const q = document.querySelectorAll('.msg.me')[%d];
	if (!q) return null;
	const r = document.querySelector('.msg.bot[data-for="' + q.dataset.id + '"]');
	if (!r || r.dataset.kind === 'pending' || (%t && r.dataset.kind === 'progress')) return null;
	const code = r.querySelector('pre code');
	const bubble = r.querySelector('.bubble');
	const label = bubble.querySelector('.label');
	let text = code ? code.innerText : bubble.innerText.trim();
	if (!code && label) text = text.slice(label.innerText.length).replace(/^\n/, '');
	return {kind: r.dataset.kind, label: label ? label.innerText : '', text, block: !!code,
		font: getComputedStyle(code || bubble).fontFamily};
})()`, n, final)
}

func webCount(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	var n int
	webRun(t, ctx, "count "+sel, chromedp.Evaluate(fmt.Sprintf(`document.querySelectorAll(%q).length`, sel), &n))
	return n
}

// webSay types text into the page and presses Enter; it returns the number
// of the user's message.
func webSay(t *testing.T, ctx context.Context, text string) int {
	t.Helper()
	n := webCount(t, ctx, ".msg.me")
	webRun(t, ctx, "type "+text, chromedp.SendKeys("#input", text+kb.Enter, chromedp.ByQuery))
	return n
}

// webAsk says text and returns the final answer the page shows.
func webAsk(t *testing.T, ctx context.Context, text string) webAnswer {
	t.Helper()
	n := webSay(t, ctx, text)
	return webAwait(t, ctx, n, true)
}

func webAwait(t *testing.T, ctx context.Context, n int, final bool) webAnswer {
	t.Helper()
	var a webAnswer
	webRun(t, ctx, fmt.Sprintf("await the answer to message %d", n),
		chromedp.Poll(webAnswerJS(n, final), &a, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(25*time.Second)))
	return a
}

func webText(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	var s string
	webRun(t, ctx, expr, chromedp.Evaluate(expr, &s))
	return s
}

// webScreenshot saves a PNG of the page to $BOTMESH_TEST_ARTIFACTS (default
// botmesh-artifacts under the temporary directory) and logs its path.
func webScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("BOTMESH_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "botmesh-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var png []byte
	webRun(t, ctx, "screenshot", chromedp.CaptureScreenshot(&png))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// The whole mesh in one process with the web input, used from a real
// browser as a person would: type, read the replies, reload, open a second
// tab, lose the server and get it back.
func TestWebChatInBrowser(t *testing.T) {
	in := webInput(t, "--web_address", "127.0.0.1:0")
	stop := webAllInOne(t, in)
	url := webURL(t, in)
	ctx := webBrowser(t)
	webOpen(t, ctx, url)
	webScreenshot(t, ctx, "web-chat-empty.png")

	began := time.Now()
	if a := webAsk(t, ctx, "ping"); a.Kind != "reply" || a.Text != "pong" || a.Block {
		t.Errorf("ping: page shows %+v, want the reply pong as text", a)
	}
	t.Logf("ping answered on the page in %s", time.Since(began).Round(time.Millisecond))
	if a := webAsk(t, ctx, "echo hi"); a.Kind != "reply" || a.Text != "hi" {
		t.Errorf("echo hi: page shows %+v", a)
	}
	help := webAsk(t, ctx, "help")
	if help.Kind != "reply" || !help.Block || !strings.Contains(help.Font, "mono") ||
		!strings.Contains(help.Text, "ping - Returns pong\n") || !strings.Contains(help.Text, "echo [text] - Returns the [text]") {
		t.Errorf("help: page shows %+v; want every command, in a monospace block, one per line", help)
	}
	if a := webAsk(t, ctx, "help echo"); a.Kind != "reply" || a.Text != "echo [text] - Returns the [text]" {
		t.Errorf("help echo: page shows %+v, want echo's usage and description", a)
	}
	if a := webAsk(t, ctx, "help ping"); a.Kind != "reply" || !strings.HasPrefix(a.Text, "ping - Returns pong") || !strings.Contains(a.Text, "Example: ping") {
		t.Errorf("help ping: page shows %+v, want ping's usage, description and example", a)
	}
	list := webAsk(t, ctx, "list services")
	switch {
	case list.Kind == "error" && strings.HasPrefix(list.Text, `unknown command "list services"`):
		t.Logf("list services: the all-in-one has no registry-cmd yet; the page showed the error %q", list.Text)
	case list.Kind != "reply" || !strings.Contains(list.Text, "go.micro.bot.echo"):
		t.Errorf("list services: page shows %+v; want a list with go.micro.bot.echo", list)
	}
	if a := webAsk(t, ctx, "ehco hi"); a.Kind != "error" || a.Label != "ERROR" || !strings.HasPrefix(a.Text, `unknown command "ehco". Did you mean "echo"?`) {
		t.Errorf("ehco hi: page shows %+v, want an error", a)
	}

	// What users and services say is shown as text, never run as HTML.
	const xss = `echo <img src=x onerror="document.title='pwned'"><b>bold</b>`
	if a := webAsk(t, ctx, xss); a.Text != strings.TrimPrefix(xss, "echo ") {
		t.Errorf("markup: page shows %q", a.Text)
	}
	if n := webCount(t, ctx, ".log img, .log b"); n != 0 {
		t.Errorf("the page made %d elements out of a message's text", n)
	}
	if title := webText(t, ctx, "document.title"); title != "botmesh" {
		t.Errorf("title %q: a message's markup ran", title)
	}
	webScreenshot(t, ctx, "web-chat.png")

	// A reload keeps the history and the identity.
	user := webText(t, ctx, `document.getElementById('user').textContent`)
	shown := webCount(t, ctx, ".msg")
	webOpen(t, ctx, url)
	if n := webCount(t, ctx, ".msg"); n != shown {
		t.Errorf("after a reload the page shows %d messages, want %d", n, shown)
	}
	if u := webText(t, ctx, `document.getElementById('user').textContent`); u != user || !strings.HasPrefix(u, "you are web-") {
		t.Errorf("after a reload the user is %q, want %q", u, user)
	}
	if a := webAsk(t, ctx, "echo after reload"); a.Text != "after reload" {
		t.Errorf("after a reload: %+v", a)
	}

	// A second tab is its own conversation; both talk at once and each
	// gets its own replies.
	tab2 := webTab(t, ctx)
	webOpen(t, tab2, url)
	if n := webCount(t, tab2, ".msg"); n != 0 {
		t.Errorf("a new tab shows %d messages of another tab", n)
	}
	n1 := webSay(t, ctx, "echo one")
	n2 := webSay(t, tab2, "echo two")
	if a := webAwait(t, ctx, n1, true); a.Text != "one" {
		t.Errorf("tab 1: %+v", a)
	}
	if a := webAwait(t, tab2, n2, true); a.Text != "two" {
		t.Errorf("tab 2: %+v", a)
	}
	if s := webText(t, ctx, `document.getElementById('log').innerText`); strings.Contains(s, "two") {
		t.Errorf("tab 1 shows tab 2's conversation:\n%s", s)
	}

	// The server goes away: a banner says so at once, what is typed waits,
	// and the page reconnects by itself when the server is back.
	stop()
	webRun(t, ctx, "banner", webWait(`document.body.dataset.conn === "down" && !document.getElementById('banner').hidden`))
	banner := webText(t, ctx, `document.getElementById('banner').innerText`)
	if !strings.Contains(banner, "Can't reach botmesh") || !strings.Contains(banner, "Reconnecting in") {
		t.Errorf("banner %q", banner)
	}
	n := webSay(t, ctx, "ping")
	if s := webText(t, ctx, fmt.Sprintf(`document.querySelectorAll('.msg.me')[%d].innerText`, n)); !strings.Contains(s, "not sent yet") {
		t.Errorf("a message typed while offline shows %q, want it marked as not sent yet", s)
	}
	webScreenshot(t, ctx, "web-chat-offline.png")

	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	in2 := webInput(t, "--web_address", addr)
	webAllInOne(t, in2)
	webURL(t, in2)
	began = time.Now()
	if a := webAwait(t, ctx, n, true); a.Text != "pong" {
		t.Errorf("the message typed offline: %+v, want pong once the server is back", a)
	}
	t.Logf("back online: the queued message was answered %s after the server listened again", time.Since(began).Round(time.Millisecond))
	if s := webText(t, ctx, `document.getElementById('banner').hidden ? '' : document.getElementById('banner').innerText`); s != "" {
		t.Errorf("banner still shown: %q", s)
	}
}

// A mesh whose router stops: the page shows the gateway's error, styled as
// an error, with a banner, instead of waiting forever.
func TestWebChatRouterDown(t *testing.T) {
	s := meshtest.NATS(t)
	m := meshtest.Mesh(t, s, nil)
	rctx, stopRouter := context.WithCancel(context.Background())
	r, err := router.New(m, router.Config{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	routerDone := make(chan error, 1)
	go func() { routerDone <- r.Run(rctx) }()
	t.Cleanup(stopRouter)
	select {
	case <-r.Ready():
	case err := <-routerDone:
		t.Fatalf("router: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("router not ready after 20s")
	}

	in := webInput(t, "--web_address", "127.0.0.1:0")
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	const replyTimeout = 3 * time.Second
	g, err := gateway.New(nc, []adapter.Input{in}, gateway.Config{ReplyTimeout: replyTimeout}, meshtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	gctx, stopGateway := context.WithCancel(context.Background())
	gwDone := make(chan error, 1)
	go func() { gwDone <- g.Run(gctx) }()
	t.Cleanup(func() {
		stopGateway()
		if err := <-gwDone; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})

	ctx := webBrowser(t)
	webOpen(t, ctx, webURL(t, in))
	if a := webAsk(t, ctx, "ping"); a.Text != "pong" {
		t.Fatalf("with a router: %+v", a)
	}
	stopRouter()
	if err := <-routerDone; err != nil {
		t.Errorf("router: %v", err)
	}

	began := time.Now()
	a := webAsk(t, ctx, "ping")
	took := time.Since(began)
	if a.Kind != "error" || a.Label != "ERROR" || !(strings.HasPrefix(a.Text, "no router is running") || strings.HasPrefix(a.Text, "no reply within "+replyTimeout.String())) {
		t.Errorf("without a router the page shows %+v, want the gateway's error", a)
	}
	t.Logf("without a router the error showed after %s (reply timeout %s)", took.Round(time.Millisecond), replyTimeout)
	banner := webText(t, ctx, `document.getElementById('banner').hidden ? '' : document.getElementById('banner').innerText`)
	if !strings.Contains(banner, "The mesh is not answering: "+a.Text) {
		t.Errorf("banner %q, want the mesh's trouble", banner)
	}
	if s := webText(t, ctx, `document.getElementById('status').innerText`); s != "mesh not answering" {
		t.Errorf("status %q, want mesh not answering", s)
	}
	if c := webText(t, ctx, `getComputedStyle(document.querySelector('.msg.bot.kind-error .bubble')).color`); c == webText(t, ctx, `getComputedStyle(document.querySelector('.msg.bot.kind-reply .bubble')).color`) {
		t.Errorf("an error looks like a reply (color %s)", c)
	}
	webScreenshot(t, ctx, "web-chat-router-down.png")
}

// Progress notes, as a command that reports progress sends them: shown
// while the work goes on, then replaced by the final reply. The test plays
// the gateway (Recv, Send) so that it can send progress, which no router
// sends yet.
func TestWebChatProgress(t *testing.T) {
	in := webInput(t, "--web_address", "127.0.0.1:0")
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopWeb(in) })
	ctx := webBrowser(t)
	webOpen(t, ctx, webURL(t, in))

	n := webSay(t, ctx, "deploy api")
	rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev, err := in.Recv(rctx)
	if err != nil {
		t.Fatal(err)
	}
	reply := func(typ chatopsv1.EventType, id, text string) {
		t.Helper()
		if err := in.Send(rctx, &chatopsv1.Event{Id: id, Type: typ, To: ev.To, Meta: ev.Meta, InReplyTo: ev.Id, Data: []byte(text)}); err != nil {
			t.Fatal(err)
		}
	}
	reply(chatopsv1.EventType_EVENT_TYPE_PROGRESS, "p1", "building image…")
	if a := webAwait(t, ctx, n, false); a.Kind != "progress" || a.Text != "building image…" {
		t.Errorf("progress: page shows %+v", a)
	}
	reply(chatopsv1.EventType_EVENT_TYPE_PROGRESS, "p2", "rolling out 2/3…")
	webRun(t, ctx, "second progress note", webWait(`document.querySelector('.msg.bot.kind-progress') && document.querySelector('.msg.bot.kind-progress').innerText.includes('rolling out 2/3')`))
	webScreenshot(t, ctx, "web-chat-progress.png")
	reply(chatopsv1.EventType_EVENT_TYPE_REPLY, "r1", "deployed api\nreplicas  3/3\nversion   v1.4.2")
	a := webAwait(t, ctx, n, true)
	if a.Kind != "reply" || !a.Block || a.Text != "deployed api\nreplicas  3/3\nversion   v1.4.2" {
		t.Errorf("final reply: page shows %+v", a)
	}
	if k := webCount(t, ctx, ".msg.bot"); k != 1 {
		t.Errorf("%d bot messages for one question: progress notes were not replaced", k)
	}
}

// With --web_token the page asks for the token, says when it is wrong, and
// connects with the right one.
func TestWebChatToken(t *testing.T) {
	const token = "correct horse battery staple"
	in := webInput(t, "--web_address", "127.0.0.1:0", "--web_token", token)
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopWeb(in) })
	ctx := webBrowser(t)
	webRun(t, ctx, "open", chromedp.Navigate(webURL(t, in)), webWait(`document.getElementById('login').open`))
	if s := webText(t, ctx, `document.getElementById('login-why').innerText`); s != "This botmesh web chat needs an access token." {
		t.Errorf("dialog says %q", s)
	}
	if s := webText(t, ctx, `document.getElementById('banner').innerText`); !strings.Contains(s, "needs an access token") {
		t.Errorf("banner %q", s)
	}
	webScreenshot(t, ctx, "web-chat-token.png")

	webRun(t, ctx, "wrong token", chromedp.SendKeys("#token", "wrong"+kb.Enter, chromedp.ByQuery),
		webWait(`document.getElementById('login').open && document.getElementById('login-why').innerText === 'That token was not accepted. Try again.'`))
	webRun(t, ctx, "right token", chromedp.SendKeys("#token", token+kb.Enter, chromedp.ByQuery),
		webWait(`document.body.dataset.conn === "connected" && !document.getElementById('login').open`))

	webSay(t, ctx, "ping")
	rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev, err := in.Recv(rctx)
	if err != nil || string(ev.Data) != "ping" {
		t.Fatalf("after signing in: %v %v", ev, err)
	}
}

// BenchmarkWebRoundTrip measures one message from a websocket client (the
// page's protocol) through the whole all-in-one and back.
func BenchmarkWebRoundTrip(b *testing.B) {
	in := web.NewInput()
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	in.Flags(fs)
	if err := fs.Parse([]string{"--web_address", "127.0.0.1:0"}); err != nil {
		b.Fatal(err)
	}
	if err := in.Init(adapter.Env{Log: slog.New(slog.DiscardHandler)}); err != nil {
		b.Fatal(err)
	}
	cfg := allinone.Config{Mesh: mesh.DefaultConfig(), NATSHost: "127.0.0.1", NATSPort: -1, Router: router.Config{Timeout: 5 * time.Second}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- allinone.Run(ctx, cfg, []adapter.Input{in}, slog.New(slog.DiscardHandler), nil) }()
	defer func() {
		cancel()
		<-done
	}()
	<-in.Listening()
	d := websocket.Dialer{Subprotocols: []string{web.Subprotocol}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(in.URL(), "http")+"ws", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	var f struct{ Type, Kind, Text string }
	if err := ws.WriteJSON(map[string]string{"type": "hello"}); err != nil {
		b.Fatal(err)
	}
	if err := ws.ReadJSON(&f); err != nil || f.Type != "welcome" {
		b.Fatal(f, err)
	}
	b.ResetTimer()
	for i := range b.N {
		if err := ws.WriteJSON(map[string]string{"type": "message", "id": fmt.Sprint("m", i), "text": "ping"}); err != nil {
			b.Fatal(err)
		}
		for f.Type != "reply" {
			if err := ws.ReadJSON(&f); err != nil {
				b.Fatal(err)
			}
		}
		if f.Text != "pong" {
			b.Fatalf("reply %+v", f)
		}
		f.Type = ""
	}
}

// Issue 11: a burst of replies (the backlog after a NATS restart) is shown
// whole, in order; a tab that was away while more replies came than the
// server keeps shows how many it missed, and the rest. The test plays the
// gateway (Recv, Send), so that it can send hundreds of replies at once.
func TestWebChatBacklog(t *testing.T) {
	in := webInput(t, "--web_address", "127.0.0.1:0")
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopWeb(in) })
	ctx := webBrowser(t)
	url := webURL(t, in)
	webOpen(t, ctx, url)

	webSay(t, ctx, "status")
	rctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ev, err := in.Recv(rctx)
	if err != nil {
		t.Fatal(err)
	}
	// The backlog answers messages the page sent before (ids x0…, y0…):
	// the page shows each as a reply of its own. The page's own ids are
	// hexadecimal: a batch named by a hex digit ("b") also matched the
	// bubble of the page's "status" when its id began with that digit.
	prefix := ev.Id[:strings.LastIndex(ev.Id, ":")+1]
	burst := func(batch string, n int) {
		t.Helper()
		for i := range n {
			if err := in.Send(rctx, &chatopsv1.Event{
				Id: fmt.Sprint(batch, "r", i), Type: chatopsv1.EventType_EVENT_TYPE_REPLY,
				To: ev.To, Meta: ev.Meta, InReplyTo: fmt.Sprint(prefix, batch, i), Data: []byte(fmt.Sprint("reply ", batch, i)),
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// shown returns the batch's replies the page shows, in page order.
	shown := func(batch string) []string {
		t.Helper()
		var ids []string
		webRun(t, ctx, "replies "+batch, chromedp.Evaluate(fmt.Sprintf(
			`Array.from(document.querySelectorAll('.msg.bot[data-for^=%q]'), (n) => n.dataset.for)`, batch), &ids))
		return ids
	}
	inOrder := func(batch string, ids []string, from int) {
		t.Helper()
		for i, id := range ids {
			if want := fmt.Sprint(batch, from+i); id != want {
				t.Fatalf("reply %d of batch %s on the page is for %s, want %s", i, batch, id, want)
			}
		}
	}

	const n = 500
	began := time.Now()
	burst("x", n)
	webRun(t, ctx, "the burst shown", webWait(fmt.Sprintf(`document.querySelectorAll('.msg.bot[data-for^="x"]').length >= %d`, n)))
	t.Logf("%d replies shown %s after the burst began", n, time.Since(began).Round(time.Millisecond))
	ids := shown("x")
	if len(ids) != n {
		t.Fatalf("the page shows %d replies of %d", len(ids), n)
	}
	inOrder("x", ids, 0)
	if s := webText(t, ctx, `document.getElementById('log').innerText`); strings.Contains(s, "dropped") {
		t.Errorf("the page says replies were dropped:\n%s", s)
	}

	// Away (another page in the tab) while more replies come than the
	// server keeps; back, it says how many it missed and shows the rest.
	webRun(t, ctx, "leave", chromedp.Navigate("about:blank"))
	const m = 1500
	burst("y", m)
	webOpen(t, ctx, url)
	webRun(t, ctx, "the notice", webWait(`Array.from(document.querySelectorAll('.notice'), (n) => n.innerText).some((s) => s.includes('were dropped while you were away'))`))
	notice := webText(t, ctx, `Array.from(document.querySelectorAll('.notice'), (n) => n.innerText).find((s) => s.includes('were dropped'))`)
	var missed int
	if _, err := fmt.Sscanf(notice, "%d replies were dropped while you were away", &missed); err != nil || missed <= 0 || missed >= m {
		t.Fatalf("notice %q: want how many replies were dropped", notice)
	}
	webRun(t, ctx, "the rest shown", webWait(fmt.Sprintf(`document.querySelectorAll('.msg.bot[data-for^="y"]').length >= %d`, m-missed)))
	ids = shown("y")
	if len(ids) != m-missed {
		t.Fatalf("after the notice of %d missed the page shows %d replies of %d", missed, len(ids), m)
	}
	inOrder("y", ids, missed)
	webScreenshot(t, ctx, "web-chat-backlog.png")
}

// webSignIn loads the page of a web chat with a token and signs in.
func webSignIn(t *testing.T, ctx context.Context, url, token string) {
	t.Helper()
	webRun(t, ctx, "open "+url, chromedp.Navigate(url), webWait(`document.getElementById('login').open`))
	webRun(t, ctx, "sign in", chromedp.SendKeys("#token", token+kb.Enter, chromedp.ByQuery),
		webWait(`document.body.dataset.conn === "connected" && !document.getElementById('login').open`))
}

// webSender says text in the tab and returns who the gateway (the test,
// playing it) sees sending it.
func webSender(t *testing.T, ctx context.Context, in *web.Input, text string) string {
	t.Helper()
	webSay(t, ctx, text)
	rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev, err := in.Recv(rctx)
	if err != nil || string(ev.Data) != text {
		t.Fatalf("say %q: got %v %v", text, ev, err)
	}
	return ev.GetFrom().GetId()
}

// Issue 12: two people given the same token are two users, each the same
// user again after a reload; one who puts in their tab a ticket made from
// the token for the other's id (as the gateway made them before) is not
// the other, and the page carries on as a new user.
func TestWebChatSessions(t *testing.T) {
	const token = "correct horse battery staple"
	in := webInput(t, "--web_address", "127.0.0.1:0", "--web_token", token)
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopWeb(in) })
	url := webURL(t, in)
	alice := webBrowser(t)
	bob := webTab(t, alice) // a tab has its own sessionStorage: another person
	webSignIn(t, alice, url, token)
	webSignIn(t, bob, url, token)
	a, b := webSender(t, alice, in, "whoami"), webSender(t, bob, in, "whoami")
	if a == b || !strings.HasPrefix(a, "web:") || !strings.HasPrefix(b, "web:") {
		t.Fatalf("two people with one token are %q and %q", a, b)
	}
	webOpen(t, alice, url)
	if again := webSender(t, alice, in, "whoami again"); again != a {
		t.Errorf("after a reload alice is %s, want %s", again, a)
	}

	k := hmac.New(sha256.New, []byte(token))
	k.Write([]byte("botmesh web session key v1"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(strings.TrimPrefix(a, "web:")))
	forged := strings.TrimPrefix(a, "web:") + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
	var ok bool
	webRun(t, bob, "forge a ticket", chromedp.Evaluate(fmt.Sprintf(`(() => {
	const s = JSON.parse(sessionStorage.getItem('botmesh.web.v1'));
	s.ticket = %q;
	sessionStorage.setItem('botmesh.web.v1', JSON.stringify(s));
	return true;
})()`, forged), &ok))
	webOpen(t, bob, url)
	if who := webSender(t, bob, in, "whoami now"); who == a || who == b {
		t.Errorf("with a ticket forged for %s the tab is %s, want a new user", a, who)
	}
	if u := webText(t, bob, `document.getElementById('user').textContent`); u == "" || strings.Contains(u, strings.TrimPrefix(a, "web:")[:6]) {
		t.Errorf("the forger's page says %q", u)
	}
}

// Issue 12: a web chat that listens beyond loopback answers only to its
// own names. A page from another site whose name resolves to this machine
// (DNS rebinding; here a resolver rule) gets 421 and no chat; the same
// server by its address works. The browser reaches it over loopback only.
func TestWebChatRebinding(t *testing.T) {
	const token = "correct horse battery staple"
	in := webInput(t, "--web_address", "0.0.0.0:0", "--web_token", token)
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopWeb(in) })
	webURL(t, in)
	_, port, err := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(in.URL(), "http://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := webBrowser(t, chromedp.Flag("host-resolver-rules", "MAP rebind.example 127.0.0.1"))
	webRun(t, ctx, "open the rebinding page", chromedp.Navigate("http://rebind.example:"+port+"/"))
	if s := webText(t, ctx, `document.body.innerText`); !strings.Contains(s, "unexpected Host header") {
		t.Errorf("the page by a foreign name shows %q, want the refusal", s)
	}
	if n := webCount(t, ctx, "#input"); n != 0 {
		t.Errorf("the chat was served by a foreign name")
	}
	webSignIn(t, ctx, "http://127.0.0.1:"+port+"/", token)
	if who := webSender(t, ctx, in, "ping"); !strings.HasPrefix(who, "web:") {
		t.Errorf("by its address: sender %q", who)
	}
}

// stopWeb stops a web input that a test drove by hand (Start, Recv, Send).
func stopWeb(in *web.Input) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = in.Stop(ctx)
}
