package frontdoor_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botmesh/botmesh/internal/frontdoor"
	"github.com/gorilla/websocket"
)

// replicas are web gateways on 127.0.0.1, 127.0.0.2…, all on one port, as
// the replicas of a compose service are on their own addresses. Each
// answers with its address and the Host it was asked for.
type replicas struct {
	t     *testing.T
	port  string
	mu    sync.Mutex
	ips   []string // what the lookup answers
	srvs  map[string]*http.Server
	lis   map[string]net.Listener
	hosts []string // Host headers seen
}

func newReplicas(t *testing.T, n int) *replicas {
	t.Helper()
	r := &replicas{t: t, srvs: map[string]*http.Server{}, lis: map[string]net.Listener{}}
	for try := 0; try < 20 && len(r.lis) < n; try++ {
		r.closeAll()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, r.port, _ = net.SplitHostPort(l.Addr().String())
		r.lis = map[string]net.Listener{"127.0.0.1": l}
		for i := 2; i <= n; i++ {
			ip := "127.0.0." + string(rune('0'+i))
			l, err := net.Listen("tcp", net.JoinHostPort(ip, r.port))
			if err != nil {
				break // the port is taken on that address: try another
			}
			r.lis[ip] = l
		}
	}
	if len(r.lis) < n {
		t.Fatalf("no port free on %d loopback addresses", n)
	}
	up := websocket.Upgrader{CheckOrigin: func(r *http.Request) bool {
		return strings.TrimPrefix(r.Header.Get("Origin"), "http://") == r.Host // the gateway's own check
	}}
	for ip, l := range r.lis {
		mux := http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
			r.mu.Lock()
			r.hosts = append(r.hosts, req.Host)
			r.mu.Unlock()
			io.WriteString(w, ip)
		})
		mux.HandleFunc("/ws", func(w http.ResponseWriter, req *http.Request) {
			c, err := up.Upgrade(w, req, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := c.WriteMessage(websocket.TextMessage, []byte(ip+": "+string(msg))); err != nil {
					return
				}
			}
		})
		srv := &http.Server{Handler: mux}
		r.srvs[ip] = srv
		r.ips = append(r.ips, ip)
		go srv.Serve(l)
	}
	t.Cleanup(r.closeAll)
	return r
}

func (r *replicas) closeAll() {
	for _, s := range r.srvs {
		s.Close()
	}
	for _, l := range r.lis {
		l.Close()
	}
}

// stop takes one replica away but leaves it in the lookup's answer, as a
// container that died before DNS knows.
func (r *replicas) stop(ip string) {
	r.srvs[ip].Close()
	r.lis[ip].Close()
}

// setIPs changes the lookup's answer, and waits out the front door's
// Refresh (1ms here).
func (r *replicas) setIPs(ips ...string) {
	r.mu.Lock()
	r.ips = ips
	r.mu.Unlock()
	time.Sleep(10 * time.Millisecond)
}

func (r *replicas) lookup(_ context.Context, host string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if host != "gateway-web" {
		r.t.Errorf("looked up %q", host)
	}
	if len(r.ips) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return append([]string(nil), r.ips...), nil
}

func newDoor(t *testing.T, r *replicas) *httptest.Server {
	t.Helper()
	p, err := frontdoor.New(frontdoor.Config{
		Backend: "gateway-web:" + r.port,
		Lookup:  r.lookup,
		Refresh: time.Millisecond,
		Log:     slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	door := httptest.NewServer(p)
	t.Cleanup(door.Close)
	return door
}

// browser is a client with its own cookies.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 5 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (string, int) {
	t.Helper()
	rsp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	return string(b), rsp.StatusCode
}

func TestNewBrowsersTakeTurnsAndStay(t *testing.T) {
	r := newReplicas(t, 3)
	door := newDoor(t, r)
	seen := map[string]int{}
	for i := 0; i < 6; i++ {
		b := browser(t)
		first, code := get(t, b, door.URL+"/")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, first)
		}
		seen[first]++
		for j := 0; j < 5; j++ {
			if again, _ := get(t, b, door.URL+"/"); again != first {
				t.Fatalf("browser %d: first %s, then %s", i, first, again)
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("6 browsers went to %v, want each of the 3 replicas", seen)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	want := strings.TrimPrefix(door.URL, "http://")
	for _, h := range r.hosts {
		if h != want {
			t.Fatalf("a replica was asked for Host %q, want the front door's %q", h, want)
		}
	}
}

func TestWebsocketPassesThroughToTheBrowsersReplica(t *testing.T) {
	r := newReplicas(t, 2)
	door := newDoor(t, r)
	b := browser(t)
	page, _ := get(t, b, door.URL+"/")
	d := websocket.Dialer{Jar: b.Jar, HandshakeTimeout: 5 * time.Second}
	host := strings.TrimPrefix(door.URL, "http://")
	for i := 0; i < 3; i++ {
		c, rsp, err := d.Dial("ws://"+host+"/ws", http.Header{"Origin": {door.URL}})
		if err != nil {
			t.Fatalf("dial: %v %v", err, rsp)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := c.ReadMessage()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if string(msg) != page+": ping" {
			t.Fatalf("websocket answered %q, want %q (the page's replica)", msg, page+": ping")
		}
	}
}

func TestAGoneReplicasBrowsersMoveOn(t *testing.T) {
	r := newReplicas(t, 2)
	door := newDoor(t, r)
	b := browser(t)
	first, _ := get(t, b, door.URL+"/")

	// Dead but still in DNS: the browser goes to the other one, and stays.
	r.stop(first)
	second, code := get(t, b, door.URL+"/")
	if code != http.StatusOK || second == first {
		t.Fatalf("after %s stopped: %d %q", first, code, second)
	}
	if again, _ := get(t, b, door.URL+"/"); again != second {
		t.Fatalf("then %q, want %q", again, second)
	}
	// A new browser is not sent to the dead one.
	if other, code := get(t, browser(t), door.URL+"/"); code != http.StatusOK || other != second {
		t.Fatalf("new browser: %d %q", code, other)
	}

	// Gone from DNS as well (scaled down): the same.
	r.setIPs(second)
	if again, _ := get(t, b, door.URL+"/"); again != second {
		t.Fatalf("after the lookup changed: %q", again)
	}

	// No replica at all: a sentence, not a hang.
	r.setIPs()
	body, code := get(t, b, door.URL+"/")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no web chat gateway is running") {
		t.Fatalf("no replicas: %d %q", code, body)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := frontdoor.New(frontdoor.Config{Backend: "gateway-web"}); err == nil {
		t.Fatal("a backend without a port was accepted")
	}
}
