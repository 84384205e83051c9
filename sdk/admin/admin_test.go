package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestHealthAndMetrics(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := New(addr, slog.New(slog.DiscardHandler))
	broken := errors.New("socket down")
	var failing error
	s.AddCheck("input", func() error { return failing })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Probe(ctx, addr); err != nil {
		t.Errorf("ready server: %v", err)
	}
	failing = broken
	if err := Probe(ctx, addr); err == nil || !strings.Contains(err.Error(), "input: socket down") {
		t.Errorf("failing check: %v", err)
	}
	rsp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	if !strings.Contains(string(b), "go_goroutines") {
		t.Errorf("/metrics lacks the Go collector:\n%.300s", b)
	}
	if err := Probe(ctx, "127.0.0.1:1"); err == nil {
		t.Error("probe of nothing succeeded")
	}
}

func TestStartFailsOnTakenAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := New(l.Addr().String(), slog.New(slog.DiscardHandler)).Start(context.Background()); err == nil {
		t.Error("listened on a taken address")
	}
}
