package shell

import (
	"context"
	"errors"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

func start(t *testing.T, in io.Reader) (*Input, *meshtest.Buffer) {
	t.Helper()
	out := &meshtest.Buffer{}
	s := New().(*Input)
	if err := s.Init(adapter.Env{Stdin: in, Stdout: out}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s, out
}

func recvAll(t *testing.T, s *Input) []*chatopsv1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var evs []*chatopsv1.Event
	for {
		ev, err := s.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		evs = append(evs, ev)
	}
}

func TestLinesBecomeEvents(t *testing.T) {
	s, _ := start(t, strings.NewReader("ping\r\n\n   \necho hi  there\nlast line without newline"))
	evs := recvAll(t, s)
	var got []string
	for _, ev := range evs {
		got = append(got, string(ev.Data))
		if ev.GetFrom().GetId() != s.user || ev.GetTo() != "shell" || ev.GetId() == "" {
			t.Errorf("event fields: %+v", ev)
		}
	}
	want := []string{"ping", "echo hi  there", "last line without newline"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("messages %q, want %q (blank lines skipped)", got, want)
	}
	if evs[1].Meta["shell.line"] != "4" {
		t.Errorf("line number meta = %q, want 4", evs[1].Meta["shell.line"])
	}
}

func TestHugeLineIsKeptUpToTheLimit(t *testing.T) {
	big := strings.Repeat("x", MaxLine+1000)
	s, _ := start(t, strings.NewReader(big+"\nping\n"))
	evs := recvAll(t, s)
	if len(evs) != 2 || len(evs[0].Data) != MaxLine+1 || string(evs[1].Data) != "ping" {
		t.Fatalf("got %d events, first %d bytes", len(evs), len(evs[0].Data))
	}
}

// Replies print in the order of the lines they answer, whatever order they
// arrive in; progress notes of the oldest line print at once.
func TestRepliesPrintInInputOrder(t *testing.T) {
	s, out := start(t, strings.NewReader("a\nb\nc\n"))
	evs := recvAll(t, s)
	reply := func(i int, typ chatopsv1.EventType, text string) {
		t.Helper()
		if err := s.Send(context.Background(), &chatopsv1.Event{InReplyTo: evs[i].Id, Type: typ, Data: []byte(text)}); err != nil {
			t.Fatal(err)
		}
	}
	reply(2, chatopsv1.EventType_EVENT_TYPE_REPLY, "C")
	reply(1, chatopsv1.EventType_EVENT_TYPE_PROGRESS, "b working")
	if out.String() != "" {
		t.Fatalf("printed before the first line was answered: %q", out.String())
	}
	reply(0, chatopsv1.EventType_EVENT_TYPE_PROGRESS, "a working")
	if out.String() != "a working\n" {
		t.Fatalf("progress of the oldest line not printed at once: %q", out.String())
	}
	reply(0, chatopsv1.EventType_EVENT_TYPE_ERROR, "A failed\n")
	reply(1, chatopsv1.EventType_EVENT_TYPE_REPLY, "B1\nB2")
	if want := "a working\nA failed\nb working\nB1\nB2\nC\n"; out.String() != want {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
	reply(0, chatopsv1.EventType_EVENT_TYPE_REPLY, "late")
	if !strings.HasSuffix(out.String(), "C\nlate\n") {
		t.Errorf("late reply not printed: %q", out.String())
	}
}

func TestStopEndsRecv(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	s, _ := start(t, pr)
	done := make(chan error, 1)
	go func() {
		_, err := s.Recv(context.Background())
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, adapter.ErrClosed) {
			t.Errorf("Recv after Stop: %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Recv still blocked 2s after Stop")
	}
}
