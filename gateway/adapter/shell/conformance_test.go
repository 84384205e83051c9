package shell_test

import (
	"bufio"
	"io"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	"github.com/botmesh/botmesh/gateway/adapter/shell"
)

// platform is a terminal: a pipe to type into and one to read from.
type platform struct {
	in    *io.PipeWriter
	lines chan string
}

func (p *platform) NewInput(t *testing.T) adapter.Input {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	t.Cleanup(func() { inW.Close(); outW.Close() })
	p.in, p.lines = inW, make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	in := shell.New()
	if err := in.Init(adapter.Env{Stdin: inR, Stdout: outW, Prefix: adapter.DefaultPrefix}); err != nil {
		t.Fatal(err)
	}
	return in
}

func (p *platform) Conversations() []adaptertest.Conversation {
	return []adaptertest.Conversation{{Name: "shell", Direct: true}}
}

func (p *platform) Say(t *testing.T, _ adaptertest.Conversation, text string) {
	t.Helper()
	if _, err := io.WriteString(p.in, text+"\n"); err != nil {
		t.Fatal(err)
	}
}

func (p *platform) SayAsTyped(t *testing.T, c adaptertest.Conversation, text string) {
	t.Helper()
	p.Say(t, c, text)
}

// Addressing: the terminal is a direct conversation, where the bot goes by
// adapter.DefaultName.
func (p *platform) Addressing() adaptertest.Addressing {
	return adaptertest.Addressing{Name: adapter.DefaultName, Mention: "@" + adapter.DefaultName}
}

func (p *platform) Posted(t *testing.T, d time.Duration) adaptertest.Post {
	t.Helper()
	select {
	case l := <-p.lines:
		return adaptertest.Post{Conversation: "shell", Text: l}
	case <-time.After(d):
		t.Fatalf("nothing printed within %s", d)
		return adaptertest.Post{}
	}
}

func (p *platform) MaxText() int { return shell.MaxLine }

func TestConformance(t *testing.T) { adaptertest.Run(t, &platform{}) }
