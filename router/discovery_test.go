package router_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/internal/microbot"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/services/echo"
	"go-micro.dev/v4"
)

// A command service started after the router is usable and listed without
// a restart, and leaves help when it stops.
func TestDiscoveryOfLateService(t *testing.T) {
	e := newEnv(t, router.Config{})
	if rep := e.ask("echo hi"); !isError(rep) || !strings.HasPrefix(string(rep.GetData()), `unknown command "echo hi"`) {
		t.Fatalf("echo before the service runs: %s %q", rep.GetType(), rep.GetData())
	}

	start := time.Now()
	stop := e.serve("echo", echo.Handler{})
	var usable, listed time.Duration
	waitFor(t, func() bool {
		if usable == 0 {
			if rep := e.ask("echo hi"); isReply(rep) && string(rep.GetData()) == "hi" {
				usable = time.Since(start)
			}
		}
		if listed == 0 && strings.Contains(string(e.ask("help").GetData()), "echo [text] - Returns the [text]") {
			listed = time.Since(start)
		}
		return usable > 0 && listed > 0
	})
	t.Logf("a service started after the router: usable after %s, in help after %s", usable.Round(time.Millisecond), listed.Round(time.Millisecond))

	start = time.Now()
	stop()
	waitFor(t, func() bool { return !strings.Contains(string(e.ask("help").GetData()), "echo") })
	t.Logf("a stopped service left help after %s", time.Since(start).Round(time.Millisecond))
	if rep := e.ask("echo hi"); !isError(rep) {
		t.Errorf("echo after the service stopped: %s %q", rep.GetType(), rep.GetData())
	}
}

// microBotCommand is the command of the Micro Bot blog post (2016),
// unchanged but for its name: it knows only the Micro Bot's proto.
type microBotCommand struct{}

func (c *microBotCommand) Help(ctx context.Context, req *microbot.HelpRequest, rsp *microbot.HelpResponse) error {
	rsp.Usage = "command"
	rsp.Description = "This is an example bot command as a micro service"
	return nil
}

func (c *microBotCommand) Exec(ctx context.Context, req *microbot.ExecRequest, rsp *microbot.ExecResponse) error {
	rsp.Result = []byte(strings.Join(req.Args, " "))
	// rsp.Error could be set to return an error instead
	// the function error would only be used for service level issues
	return nil
}

// A command service written as in the Micro Bot blog, on the Micro Bot's own
// proto (only Help and Exec, the seed field numbers), works unchanged.
func TestMicroBotServiceUnchanged(t *testing.T) {
	e := newEnv(t, router.Config{})
	m := meshtest.Mesh(t, e.s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	// As in the blog, but on the test's registry and transport (the blog
	// used the defaults, chosen with flags) and stopped by a context
	// instead of a signal.
	service := micro.NewService(
		micro.Name("go.micro.bot.command"),
		micro.Registry(m.Registry()),
		micro.Transport(m.Transport()),
		micro.Context(ctx),
	)
	if err := microbot.RegisterCommandHandler(service.Server(), new(microBotCommand)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- service.Run() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service Run: %v", err)
		}
	})
	waitFor(t, func() bool {
		return strings.Contains(string(e.ask("help").GetData()), "command - This is an example bot command as a micro service")
	})
	rep := e.ask("command hello from 2016")
	if !isReply(rep) || string(rep.GetData()) != "command hello from 2016" {
		t.Errorf("got %s %q", rep.GetType(), rep.GetData())
	}
}

// Several replicas share the work; each message is answered once.
func TestTwoRoutersAnswerOnce(t *testing.T) {
	e := newEnv(t, router.Config{})
	second, err := router.New(meshtest.Mesh(t, e.s, nil), router.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-second.Ready()
	e.serve("echo", echo.Handler{})
	waitFor(t, func() bool { return isReply(e.ask("echo a")) })

	const n = 200
	out, err := e.nc.SubscribeSync(chatopsv1.SubjectOutPrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := range n {
		_, id := e.send([]byte(fmt.Sprintf("echo %d", i)))
		want[id] = fmt.Sprint(i)
	}
	got := map[string]int{}
	for range n {
		rep := e.await(out, 10*time.Second)
		if want[rep.GetInReplyTo()] != string(rep.GetData()) {
			t.Fatalf("reply %q to %s, want %q", rep.GetData(), rep.GetInReplyTo(), want[rep.GetInReplyTo()])
		}
		got[rep.GetInReplyTo()]++
	}
	if extra, err := out.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("more than %d replies; extra: %q", n, extra.Data)
	}
	if len(got) != n {
		t.Fatalf("%d distinct messages answered, want %d", len(got), n)
	}
}
