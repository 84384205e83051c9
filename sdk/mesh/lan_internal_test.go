package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/lan"
	"github.com/nats-io/nats-server/v2/server"
)

// startNATS runs a NATS server on a random loopback port and returns its
// host:port.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(s.Shutdown)
	return s.Addr().String()
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// fakeLAN replaces lan.Find with answers from a list, and counts calls.
func fakeLAN(t *testing.T, answers ...func() (string, error)) *atomic.Int32 {
	t.Helper()
	calls := &atomic.Int32{}
	old := lanFind
	lanFind = func(ctx context.Context, _ time.Duration, _ *slog.Logger) (string, error) {
		i := int(calls.Add(1)) - 1
		if i >= len(answers) {
			i = len(answers) - 1
		}
		return answers[i]()
	}
	t.Cleanup(func() { lanFind = old })
	return calls
}

func setLocal(t *testing.T, addr string) {
	t.Helper()
	old := localNATS
	localNATS = addr
	t.Cleanup(func() { localNATS = old })
}

func findConfig() Config {
	c := DefaultConfig()
	c.FindNATS = true
	c.ConnectWait = 2 * time.Second
	c.LANWait = 50 * time.Millisecond
	return c
}

// How a process given no NATS address picks one: the server on this host
// first, then the LAN; explicit addresses win; no multicast falls back to
// the default at once.
func TestFindNATS(t *testing.T) {
	t.Run("a server on this host is used without asking the LAN", func(t *testing.T) {
		addr := startNATS(t)
		setLocal(t, addr)
		calls := fakeLAN(t, func() (string, error) { return "", errors.New("must not be called") })
		started := time.Now()
		m, err := Connect(t.Context(), findConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		t.Logf("connected %s after Connect", time.Since(started))
		if got := m.Config().NATSURL; got != "nats://"+addr || m.NATS().ConnectedAddr() != addr {
			t.Errorf("NATS URL %s, connected to %s; want %s", got, m.NATS().ConnectedAddr(), addr)
		}
		if calls.Load() != 0 {
			t.Errorf("asked the LAN %d times", calls.Load())
		}
	})

	t.Run("else the first server announced on the LAN", func(t *testing.T) {
		addr := startNATS(t)
		setLocal(t, closedPort(t))
		calls := fakeLAN(t,
			func() (string, error) { return "", lan.ErrNotFound },
			func() (string, error) { return "", lan.ErrNotFound },
			func() (string, error) { return "nats://" + addr, nil })
		m, err := Connect(t.Context(), findConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if m.NATS().ConnectedAddr() != addr || calls.Load() != 3 {
			t.Errorf("connected to %s after %d LAN queries; want %s after 3", m.NATS().ConnectedAddr(), calls.Load(), addr)
		}
	})

	t.Run("an explicit address wins", func(t *testing.T) {
		addr := startNATS(t)
		setLocal(t, closedPort(t))
		calls := fakeLAN(t, func() (string, error) { return "", errors.New("must not be called") })
		c := findConfig()
		c.NATSURL = "nats://" + addr
		m, err := Connect(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if m.NATS().ConnectedAddr() != addr || calls.Load() != 0 {
			t.Errorf("connected to %s after %d LAN queries", m.NATS().ConnectedAddr(), calls.Load())
		}
	})

	t.Run("no multicast: the default address at once", func(t *testing.T) {
		local := closedPort(t)
		setLocal(t, local)
		calls := fakeLAN(t, func() (string, error) { return "", errors.New("failed to bind to any multicast udp port") })
		c := findConfig()
		c.ConnectWait = 300 * time.Millisecond
		_, err := Connect(t.Context(), c)
		// One LAN query, then the default, which Connect waits for as it
		// always did.
		if calls.Load() != 1 || err == nil || !strings.Contains(err.Error(), fmt.Sprintf("NATS at nats://%s did not answer", local)) {
			t.Errorf("after %d LAN queries: %v", calls.Load(), err)
		}
	})

	t.Run("nothing anywhere: a clear error when the wait is over", func(t *testing.T) {
		local := closedPort(t)
		setLocal(t, local)
		fakeLAN(t, func() (string, error) { time.Sleep(20 * time.Millisecond); return "", lan.ErrNotFound })
		c := findConfig()
		c.ConnectWait = 300 * time.Millisecond
		_, err := Connect(t.Context(), c)
		want := fmt.Sprintf("mesh: no NATS server found on %s or announced on the LAN: context deadline exceeded", local)
		if err == nil || err.Error() != want {
			t.Errorf("error %v, want %s", err, want)
		}
	})
}
