package web_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	"github.com/botmesh/botmesh/gateway/adapter/web"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/gorilla/websocket"
)

// platform is a browser tab on the input's page, speaking the page's
// websocket protocol: it says hello, sends messages and reads what the bot
// posts.
type platform struct {
	in *web.Input

	mu    sync.Mutex
	ws    *websocket.Conn
	n     int
	posts chan adaptertest.Post
}

func (p *platform) NewInput(t *testing.T) adapter.Input {
	in := web.NewInput()
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	in.Flags(fs)
	if err := fs.Parse([]string{"--web_address", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if err := in.Init(adapter.Env{Log: meshtest.Logger(t), Prefix: adapter.DefaultPrefix}); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.in, p.ws, p.posts = in, nil, make(chan adaptertest.Post, 100)
	p.mu.Unlock()
	return in
}

func (p *platform) Conversations() []adaptertest.Conversation {
	return []adaptertest.Conversation{{Name: "tab", Direct: true}}
}

// tab opens the page's websocket once the gateway has started the input.
func (p *platform) tab(t *testing.T) *websocket.Conn {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ws != nil {
		return p.ws
	}
	select {
	case <-p.in.Listening():
	case <-time.After(10 * time.Second):
		t.Fatal("the web input is not listening after 10s")
	}
	u := p.in.URL()
	d := websocket.Dialer{Subprotocols: []string{web.Subprotocol}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(u, "http")+"ws", http.Header{"Origin": {strings.TrimSuffix(u, "/")}})
	if err != nil {
		t.Fatalf("open the page's websocket: %v", err)
	}
	if err := ws.WriteJSON(map[string]string{"type": "hello", "conversation": "tab"}); err != nil {
		t.Fatal(err)
	}
	var w frame
	if err := ws.ReadJSON(&w); err != nil || w.Type != "welcome" {
		t.Fatalf("no welcome: %+v %v", w, err)
	}
	posts := p.posts
	go func() {
		// Ends when the input closes the websocket (Stop).
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f frame
			if json.Unmarshal(data, &f) == nil && f.Type == "reply" {
				posts <- adaptertest.Post{Conversation: "tab", Text: f.Text}
			}
		}
	}()
	p.ws = ws
	return ws
}

func (p *platform) Say(t *testing.T, _ adaptertest.Conversation, text string) {
	t.Helper()
	ws := p.tab(t)
	p.mu.Lock()
	p.n++
	id := fmt.Sprintf("m%d", p.n)
	p.mu.Unlock()
	if err := ws.WriteJSON(map[string]string{"type": "message", "id": id, "text": text}); err != nil {
		t.Fatal(err)
	}
}

func (p *platform) SayAsTyped(t *testing.T, c adaptertest.Conversation, text string) {
	t.Helper()
	p.Say(t, c, text)
}

// Addressing: a tab is a direct conversation, where the bot goes by
// adapter.DefaultName.
func (p *platform) Addressing() adaptertest.Addressing {
	return adaptertest.Addressing{Name: adapter.DefaultName, Mention: "@" + adapter.DefaultName}
}

func (p *platform) Posted(t *testing.T, d time.Duration) adaptertest.Post {
	t.Helper()
	select {
	case post := <-p.posts:
		return post
	case <-time.After(d):
		t.Fatalf("nothing posted within %s", d)
		return adaptertest.Post{}
	}
}

// MaxText leaves room for the frame's JSON around the text.
func (p *platform) MaxText() int { return web.DefaultMaxFrame - 100 }

func TestConformance(t *testing.T) { adaptertest.Run(t, &platform{}) }
