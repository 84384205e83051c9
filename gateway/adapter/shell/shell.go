// Package shell is the terminal input: each line on stdin is a message,
// each reply is printed on stdout. Replies are printed in the order of the
// lines they answer, so piped input gives reproducible output:
//
//	printf 'ping\necho hi\n' | botmesh
package shell

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"sync"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/nats-io/nuid"
)

// Name is the input's name and platform.
const Name = "shell"

// MaxLine is the longest line kept; the rest of a longer line is read and
// dropped (the gateway refuses the message as too long anyway).
const MaxLine = 16 << 20

// Input reads messages from a reader and prints replies to a writer.
type Input struct {
	in     io.Reader
	out    io.Writer
	user   string
	prefix string // dropped from the start of a line (--prefix)

	startOnce sync.Once
	stopOnce  sync.Once
	lines     chan line
	stop      chan struct{}

	mu    sync.Mutex
	order []string                      // ids of messages awaiting their final reply, oldest first
	held  map[string][]*chatopsv1.Event // replies waiting for earlier ones
}

type line struct {
	text []byte
	n    int
	err  error
}

var _ adapter.Input = (*Input)(nil)

// New returns a shell input; Init gives it stdin and stdout.
func New() adapter.Configurable {
	name := "user"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return &Input{
		user:  name,
		lines: make(chan line),
		stop:  make(chan struct{}),
		held:  map[string][]*chatopsv1.Event{},
	}
}

// String implements adapter.Input.
func (s *Input) String() string { return Name }

// Flags implements adapter.Configurable.
func (s *Input) Flags(fs *flag.FlagSet) {
	fs.StringVar(&s.user, "shell_user", s.user, "user name the shell's messages come from")
}

// Init implements adapter.Configurable.
func (s *Input) Init(env adapter.Env) error {
	s.in, s.out = env.Stdin, env.Stdout
	s.prefix = env.Prefix
	if s.in == nil || s.out == nil {
		return errors.New("shell: no stdin or stdout")
	}
	if s.user == "" {
		return errors.New("shell: --shell_user is empty")
	}
	return nil
}

// Start starts reading lines; Run does it first.
func (s *Input) Start(context.Context) error {
	s.startOnce.Do(func() { go s.read() })
	return nil
}

// Run implements adapter.Input: it reads lines and hands each message to
// emit until the end of input or ctx ends.
func (s *Input) Run(ctx context.Context, emit adapter.Emit) error {
	_ = s.Start(ctx)
	return adapter.Drive(ctx, emit, s.Recv, s.Stop)
}

// Stop ends the input. A reader other than os.Stdin that can be
// closed is closed, to end a read in progress.
func (s *Input) Stop(context.Context) error {
	s.stopOnce.Do(func() {
		close(s.stop)
		if c, ok := s.in.(io.Closer); ok && s.in != os.Stdin {
			_ = c.Close()
		}
	})
	return nil
}

func (s *Input) read() {
	br := bufio.NewReaderSize(s.in, 64<<10)
	for n := 1; ; n++ {
		text, err := readLine(br)
		if len(bytes.TrimSpace(text)) > 0 {
			select {
			case s.lines <- line{text: text, n: n}:
			case <-s.stop:
				return
			}
		}
		if err != nil {
			select {
			case s.lines <- line{err: err}:
			case <-s.stop:
			}
			return
		}
	}
}

// readLine reads one line without its line ending, keeping at most MaxLine+1
// bytes of it. The error is the reader's (io.EOF at the end).
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if room := MaxLine + 1 - len(buf); room > 0 {
			buf = append(buf, chunk[:min(len(chunk), room)]...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		buf = bytes.TrimSuffix(buf, []byte("\n"))
		buf = bytes.TrimSuffix(buf, []byte("\r"))
		return buf, err
	}
}

// Recv returns the next message for the mesh; Run hands it on.
func (s *Input) Recv(ctx context.Context) (*chatopsv1.Event, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stop:
		return nil, adapter.ErrClosed
	case l := <-s.lines:
		if l.err != nil {
			if errors.Is(l.err, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("shell: read: %w", l.err)
		}
		ev := &chatopsv1.Event{
			Id:   nuid.Next(),
			Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE,
			From: &chatopsv1.Peer{Id: s.user, Name: s.user},
			To:   Name,
			Data: []byte(adapter.Addressing{Names: []string{adapter.DefaultName}, Prefix: s.prefix}.Direct(string(l.text))),
			Meta: map[string]string{"shell.line": strconv.Itoa(l.n)},
		}
		s.mu.Lock()
		s.order = append(s.order, ev.Id)
		s.mu.Unlock()
		return ev, nil
	}
}

// Send implements adapter.Conn: it prints the reply once the replies to
// earlier lines are printed. A reply to nothing awaited (a late one) is
// printed at once.
func (s *Input) Send(_ context.Context, ev *chatopsv1.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := ev.GetInReplyTo()
	awaited := false
	for _, o := range s.order {
		if o == id {
			awaited = true
			break
		}
	}
	if !awaited {
		return s.print(ev)
	}
	s.held[id] = append(s.held[id], ev)
	for len(s.order) > 0 {
		head := s.order[0]
		evs := s.held[head]
		final := len(evs) > 0 && evs[len(evs)-1].GetType() != chatopsv1.EventType_EVENT_TYPE_PROGRESS
		// Progress notes of the oldest message print at once.
		for len(evs) > 0 && (final || evs[0].GetType() == chatopsv1.EventType_EVENT_TYPE_PROGRESS) {
			if err := s.print(evs[0]); err != nil {
				return err
			}
			evs = evs[1:]
		}
		s.held[head] = evs
		if !final {
			break
		}
		delete(s.held, head)
		s.order = s.order[1:]
	}
	return nil
}

func (s *Input) print(ev *chatopsv1.Event) error {
	data := ev.GetData()
	if len(data) == 0 || data[len(data)-1] != '\n' {
		data = append(data[:len(data):len(data)], '\n')
	}
	if _, err := s.out.Write(data); err != nil {
		return fmt.Errorf("shell: write: %w", err)
	}
	return nil
}
