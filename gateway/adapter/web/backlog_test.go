package web_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/web"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/gorilla/websocket"
)

// Issue 11: after a NATS restart the replies that backed up reach the
// gateway in a burst, and the web input sends them all to the tab that
// asked: too many for a queue per connection. These tests send such bursts.

// serveSmall is serve with small socket buffers: the server's 32 KiB for
// sending to each browser, and the browser's 128 KiB for receiving (the
// kernel doubles both), so that a burst of replies fills them long before
// the history and the server's writes wait for the browser. (With the
// usual buffers, loopback takes a 3 MB burst whole: Linux grows them up to
// tcp_wmem and tcp_rmem's maxima, 4 and 32 MiB here.)
func serveSmall(t *testing.T, in *web.Input) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(in.Handler())
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
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

type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(32 << 10)
	}
	return c, err
}

// openSmall is open with a 128 KiB receive buffer (see serveSmall).
func openSmall(t *testing.T, srv *httptest.Server, hello map[string]any) (*browser, frame) {
	t.Helper()
	d := websocket.Dialer{
		Subprotocols:     []string{web.Subprotocol},
		HandshakeTimeout: 5 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(128 << 10)
			}
			return c, err
		},
	}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+web.WebsocketPath, http.Header{"Origin": {srv.URL}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	b := &browser{t: t, ws: ws}
	hello["type"] = "hello"
	b.send(hello)
	if w := b.next(); w.Type != "welcome" {
		t.Fatalf("first frame %+v, want a welcome", w)
	}
	return b, frame{}
}

// ask sends a message from b and returns the event the gateway gets.
func ask(t *testing.T, in *web.Input, b *browser, id string) *chatopsv1.Event {
	t.Helper()
	b.send(map[string]any{"type": "message", "id": id, "text": "ping"})
	ev := recv(t, in)
	if f := b.next(); f.Type != "ack" || f.InReplyTo != id {
		t.Fatalf("after message %s: %+v, want its ack", id, f)
	}
	return ev
}

// burst answers ev with n replies r<from>… r<from+n-1>, each with pad
// bytes of text, as fast as Send takes them; Send must not wait for the
// browser.
func burst(t *testing.T, in *web.Input, ev *chatopsv1.Event, from, n, pad int) {
	t.Helper()
	began := time.Now()
	for i := from; i < from+n; i++ {
		answer(t, in, ev, chatopsv1.EventType_EVENT_TYPE_REPLY, fmt.Sprint("r", i), replyText(i, pad))
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("%d Sends took %s: Send waits for the browser", n, took)
	}
}

func replyText(i, pad int) string {
	return fmt.Sprintf("reply %d %s", i, strings.Repeat("x", pad))
}

// expectReplies reads replies r<from>… r<to-1>, numbered seq0… in the
// conversation, in order and once each.
func expectReplies(t *testing.T, b *browser, from, to int, seq0 uint64, pad int) {
	t.Helper()
	for i := from; i < to; i++ {
		f, err := b.read(10 * time.Second)
		if err != nil {
			t.Fatalf("reply r%d (of r%d…r%d): %v", i, from, to-1, err)
		}
		want := seq0 + uint64(i-from)
		if f.Type != "reply" || f.ID != fmt.Sprint("r", i) || f.Seq != want || f.Text != replyText(i, pad) {
			t.Fatalf("frame %d: %s %s seq %d code %q %q, want reply r%d seq %d", i-from, f.Type, f.ID, f.Seq, f.Code, f.Message, i, want)
		}
	}
}

// A burst of 500 replies to a tab that reads none of them for a while:
// all 500 arrive, in order, once each, on the same connection.
func TestBurstToBusyTab(t *testing.T) {
	const n, pad = 500, 6000 // 3 MB: under the history's cap in bytes
	in := newInput(t)
	srv := serveSmall(t, in)
	b, _ := openSmall(t, srv, map[string]any{"conversation": "tab"})
	ev := ask(t, in, b, "m1")
	burst(t, in, ev, 0, n, pad)
	time.Sleep(1500 * time.Millisecond) // the tab is busy
	left := in.Unwritten()
	if left < n/2 {
		t.Fatalf("the server wrote %d of %d replies to a tab that read none: the test did not make it wait", n-left, n)
	}
	t.Logf("while the tab read nothing the server wrote %d of %d replies, and waited", n-left, n)
	expectReplies(t, b, 0, n, 1, pad)
	// The connection is still the same and still works, and nothing came
	// between (ask checks that the next frame is the ack).
	ev = ask(t, in, b, "m2")
	answer(t, in, ev, chatopsv1.EventType_EVENT_TYPE_REPLY, "last", "still here")
	if f := b.next(); f.ID != "last" || f.Seq != n+1 {
		t.Fatalf("after the burst: %+v", f)
	}
	b.silent(200 * time.Millisecond)
}

// A tab that goes away in the middle of a burst and comes back (same
// session, same conversation) gets every reply after the last one it saw,
// once each, and no notice of loss.
func TestReconnectGetsEveryMissedReply(t *testing.T) {
	const n, pad, read = 500, 200, 120
	in := newInput(t)
	srv := serve(t, in)
	b, w := open(t, srv, map[string]any{"conversation": "tab"})
	ev := ask(t, in, b, "m1")
	burst(t, in, ev, 0, n/2, pad)
	expectReplies(t, b, 0, read, 1, pad)
	b.ws.Close() // reloading, or the network dropped
	burst(t, in, ev, n/2, n/2, pad)

	b2, w2 := open(t, srv, map[string]any{"session": w.Session, "conversation": "tab", "epoch": w.Epoch, "seen": read})
	if w2.User != w.User || w2.Epoch != w.Epoch {
		t.Fatalf("after reconnecting: %+v, want the user and epoch of %+v", w2, w)
	}
	expectReplies(t, b2, read, n, read+1, pad)
	// The replies still come to the new connection, and nothing came twice.
	burst(t, in, ev, n, 3, pad)
	expectReplies(t, b2, n, n+3, n+1, pad)
	b2.silent(200 * time.Millisecond)
}

// More replies than the history keeps: the tab is told plainly how many it
// missed, then gets those that were kept, in order.
func TestOverflowSaysHowManyWereMissed(t *testing.T) {
	t.Run("count cap, tab away", func(t *testing.T) {
		const over = 76
		in := newInput(t)
		srv := serve(t, in)
		b, w := open(t, srv, map[string]any{"conversation": "tab"})
		ev := ask(t, in, b, "m1")
		b.ws.Close()
		burst(t, in, ev, 0, web.HistoryMax+over, 10)

		b2, _ := open(t, srv, map[string]any{"session": w.Session, "conversation": "tab", "epoch": w.Epoch})
		if f := b2.next(); f.Type != "error" || f.Code != "lost" || f.Missed != over || f.Message != fmt.Sprintf("%d replies were dropped while you were away", over) {
			t.Fatalf("after the overflow: %+v, want the lost notice for %d replies", f, over)
		}
		expectReplies(t, b2, over, web.HistoryMax+over, over+1, 10)
		b2.silent(200 * time.Millisecond)
	})

	t.Run("byte cap, tab away", func(t *testing.T) {
		const n, pad = 100, 64 << 10 // 6.4 MB: over the cap in bytes, under the one in count
		in := newInput(t)
		srv := serve(t, in)
		b, w := open(t, srv, map[string]any{"conversation": "tab"})
		ev := ask(t, in, b, "m1")
		b.ws.Close()
		burst(t, in, ev, 0, n, pad)

		b2, _ := open(t, srv, map[string]any{"session": w.Session, "conversation": "tab", "epoch": w.Epoch, "seen": 0})
		f := b2.next()
		if f.Type != "error" || f.Code != "lost" || f.Message != fmt.Sprintf("%d replies were dropped while you were away", f.Missed) {
			t.Fatalf("after the overflow: %+v, want the lost notice", f)
		}
		// A frame is the text and under 200 bytes of JSON around it.
		if kept := n - int(f.Missed); kept*pad > web.HistoryBytes || (kept+1)*(pad+200) <= web.HistoryBytes {
			t.Fatalf("%d replies of %d bytes kept: want as many as %d bytes hold", kept, pad, web.HistoryBytes)
		}
		expectReplies(t, b2, int(f.Missed), n, f.Missed+1, pad)
	})

	t.Run("one reply", func(t *testing.T) {
		in := newInput(t)
		srv := serve(t, in)
		b, w := open(t, srv, map[string]any{"conversation": "tab"})
		ev := ask(t, in, b, "m1")
		b.ws.Close()
		burst(t, in, ev, 0, web.HistoryMax+1, 0)
		b2, _ := open(t, srv, map[string]any{"session": w.Session, "conversation": "tab", "epoch": w.Epoch})
		if f := b2.next(); f.Code != "lost" || f.Missed != 1 || f.Message != "1 reply was dropped while you were away" {
			t.Fatalf("%+v", f)
		}
	})

	// A tab that stays connected but reads nothing while more replies than
	// the history keeps come: what it gets, plus what it is told it
	// missed, is every reply, in order.
	t.Run("tab connected, not reading", func(t *testing.T) {
		const n, pad = 3 * web.HistoryMax, 8000 // 24 MB: more than the socket buffers and the history hold
		in := newInput(t)
		srv := serveSmall(t, in)
		b, _ := openSmall(t, srv, map[string]any{"conversation": "tab"})
		ev := ask(t, in, b, "m1")
		burst(t, in, ev, 0, n, pad)
		time.Sleep(500 * time.Millisecond)
		next, missed := 0, 0
		for next < n {
			f, err := b.read(10 * time.Second)
			if err != nil {
				t.Fatalf("after reply r%d: %v", next-1, err)
			}
			if f.Type == "error" && f.Code == "lost" {
				// One for each time the writer fell behind the history.
				if f.Missed == 0 {
					t.Fatalf("lost notice %+v", f)
				}
				missed += int(f.Missed)
				next += int(f.Missed)
				continue
			}
			if f.Type != "reply" || f.ID != fmt.Sprint("r", next) || f.Seq != uint64(next+1) {
				t.Fatalf("%+v, want reply r%d", f, next)
			}
			next++
		}
		if missed == 0 {
			t.Errorf("told of no missed replies: the test did not overflow the history")
		}
		t.Logf("%d replies sent, %d missed", n, missed)
		b.silent(200 * time.Millisecond)
	})
}

// The reply to a message goes to the connection it came from while that is
// open, not to the conversation's other one (a duplicated tab); once it is
// gone, the other gets the replies.
func TestRepliesGoToTheAskingConnection(t *testing.T) {
	in := newInput(t)
	srv := serve(t, in)
	a, w := open(t, srv, map[string]any{"conversation": "tab"})
	b, _ := open(t, srv, map[string]any{"session": w.Session, "conversation": "tab", "epoch": w.Epoch})
	ev := ask(t, in, a, "m1")
	answer(t, in, ev, chatopsv1.EventType_EVENT_TYPE_REPLY, "r0", replyText(0, 0))
	expectReplies(t, a, 0, 1, 1, 0)
	a.ws.Close()
	// Replies keep coming; those sent before the server sees that a is
	// gone are a's, those after go to b, in order. b did not get r0.
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		i := 1
		defer func() { sent <- i }()
		for ; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := in.Send(context.Background(), &chatopsv1.Event{
				Id: fmt.Sprint("r", i), Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: []byte(replyText(i, 0)),
				To: ev.GetTo(), Meta: ev.GetMeta(), InReplyTo: ev.GetId(),
			}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	f := b.next()
	close(stop)
	last := <-sent
	first := int(f.Seq) - 1
	if f.ID != fmt.Sprint("r", first) || first < 1 {
		t.Fatalf("b got %+v first", f)
	}
	expectReplies(t, b, first+1, last, uint64(first+2), 0)
}

// A duplicated tab (same conversation) that stays open while the other
// gets more replies than the history keeps is not told that any were
// dropped: none were for it.
func TestOtherConnectionsRepliesAreNotMissed(t *testing.T) {
	in := newInput(t)
	srv := serve(t, in)
	a, w := open(t, srv, map[string]any{"conversation": "tab"})
	b, _ := open(t, srv, map[string]any{"session": w.Session, "conversation": "tab", "epoch": w.Epoch})
	ev := ask(t, in, a, "m1")
	burst(t, in, ev, 0, web.HistoryMax+10, 0)
	// A reply for the whole conversation (the connection it answers is
	// unknown): b gets it, and nothing before it.
	last := web.HistoryMax + 10
	if err := in.Send(context.Background(), &chatopsv1.Event{
		Id: fmt.Sprint("r", last), Type: chatopsv1.EventType_EVENT_TYPE_REPLY, Data: []byte(replyText(last, 0)),
		To: ev.GetTo(), InReplyTo: ev.GetId(),
	}); err != nil {
		t.Fatal(err)
	}
	expectReplies(t, b, last, last+1, uint64(last+1), 0)
}
