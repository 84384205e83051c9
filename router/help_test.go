package router_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/botmesh/botmesh/services/echo"
	"github.com/nats-io/nuid"
)

// registryLike serves "list services" and "get service", as
// services/registry-cmd does; its Exec answers with the words it got.
func registryLike() handler {
	return handler{
		help: func(rsp *chatopsv1.HelpResponse) error {
			rsp.Commands = []*chatopsv1.CommandSpec{
				{Pattern: "list services", Usage: "list services", Description: "Lists the registered services with their node counts"},
				{Pattern: "get service", Usage: "get service NAME", Description: "Shows a service's versions, nodes and endpoints\nExample: get service greeter"},
			}
			return nil
		},
		exec: func(_ context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
			rsp.Result = []byte("ran " + strings.Join(req.Args, " ") + " (text " + req.Text + ")")
			return nil
		},
	}
}

// helpEnv is a router with echo and the registry-like service, once help
// lists both.
func helpEnv(t *testing.T, cfg router.Config) *env {
	e := newEnv(t, cfg)
	e.serve("echo", echo.Handler{})
	e.serve("registry", registryLike())
	waitFor(t, func() bool {
		h := string(e.ask("help").GetData())
		return strings.Contains(h, "echo [text]") && strings.Contains(h, "get service [name]")
	})
	return e
}

func TestHelpCommand(t *testing.T) {
	e := helpEnv(t, router.Config{})
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{in: "help echo", want: "echo [text] - Returns the [text]"},
		{in: "help echo hi there", want: "echo [text] - Returns the [text]"},
		{in: "HELP Echo", want: "echo [text] - Returns the [text]"},
		{in: "help ping", want: "ping - Returns pong\nExample: ping"},
		{in: "help the three laws", want: "the three laws - Returns the three laws of robotics\nExample: the three laws\nExample: three laws of robotics"},
		{in: "help three laws", want: "the three laws - Returns the three laws of robotics\nExample: the three laws\nExample: three laws of robotics"},
		{in: "help help", want: "help [command] - Displays help for all known commands, or the usage, description and examples of [command]\nExample: help\nExample: help echo\nExample: help list services"},
		{in: "micro help help", want: "help [command] - Displays help for all known commands, or the usage, description and examples of [command]\nExample: help\nExample: help echo\nExample: help list services"},
		{in: "help list services", want: "list services - Lists the registered services with their node counts"},
		{in: "help get service", want: "get service [name] - Shows a service's versions, nodes and endpoints\nExample: get service greeter"},
		{in: "help get service billing", want: "get service [name] - Shows a service's versions, nodes and endpoints\nExample: get service greeter"},
		{in: "help every", want: "every [duration] [command] - Runs [command] every [duration] (at least 1s)"},
		{in: "help unschedule", want: "unschedule [id] - Removes a schedule you set"},
		{in: "help watching", want: "watching - Lists what this conversation watches"},
		{in: "help watch", want: "watch [service] [health] [n] - Tells this conversation when [service]'s nodes come and go; with health, when its health fails [n] times in a row (default 3) and when it recovers (watch commands: command services added and removed)"},
		{in: "help list", err: true, want: `There is no command "list". Did you mean "list services"? Type help for the list of commands.`},
		{in: "help list service", err: true, want: `There is no command "list service". Did you mean "list services"? Type help for the list of commands.`},
		{in: "help ecko", err: true, want: `There is no command "ecko". Did you mean "echo"? Type help for the list of commands.`},
		{in: "help deploy now", err: true, want: `There is no command "deploy now". Type help for the list of commands.`},
	} {
		rep := e.ask(tc.in)
		if isError(rep) != tc.err || string(rep.GetData()) != tc.want {
			t.Errorf("%q: got %s %q, want (error %v) %q", tc.in, rep.GetType(), rep.GetData(), tc.err, tc.want)
		}
	}
}

func TestMicroPrefix(t *testing.T) {
	e := helpEnv(t, router.Config{})
	help := string(e.ask("help").GetData())
	for _, in := range []string{"micro help", "Micro", "MICRO  help "} {
		if rep := e.ask(in); !isReply(rep) || string(rep.GetData()) != help {
			t.Errorf("%q: got %s %q, want the help", in, rep.GetType(), rep.GetData())
		}
	}
	for in, want := range map[string]string{
		"micro ping":                "pong",
		"micro echo hi there":       "hi there",
		"micro help list services":  "list services - Lists the registered services with their node counts",
		"micro help ping":           "ping - Returns pong\nExample: ping",
		"micro list services":       "ran list services (text list services)",
		"micro get service greeter": "ran get service greeter (text get service greeter)",
	} {
		if rep := e.ask(in); !isReply(rep) || string(rep.GetData()) != want {
			t.Errorf("%q: got %s %q, want reply %q", in, rep.GetType(), rep.GetData(), want)
		}
	}
	want := `unknown command "lst services". Did you mean "list services"? Type help for the list of commands.`
	if rep := e.ask("micro lst services"); !isError(rep) || string(rep.GetData()) != want {
		t.Errorf("micro lst services: got %s %q, want error %q", rep.GetType(), rep.GetData(), want)
	}
}

func TestUnknownMultiWord(t *testing.T) {
	e := helpEnv(t, router.Config{})
	for in, want := range map[string]string{
		"list":                   `unknown command "list". Did you mean "list services"? Type help for the list of commands.`,
		"list service":           `unknown command "list service". Did you mean "list services"? Type help for the list of commands.`,
		"LIST":                   `unknown command "LIST". Did you mean "list services"? Type help for the list of commands.`,
		"get":                    `unknown command "get". Did you mean "get service"? Type help for the list of commands.`,
		"the three law":          `unknown command "the three law". Did you mean "the three laws"? Type help for the list of commands.`,
		"three law":              `unknown command "three law". Did you mean "the three laws"? Type help for the list of commands.`,
		"ecko hi":                `unknown command "ecko". Did you mean "echo"? Type help for the list of commands.`,
		"deploy x":               `unknown command "deploy x". Type help for the list of commands.`,
		"bot is acting up again": `unknown command "bot is acting up again". Type help for the list of commands.`,
		"please deploy the billing service to production right now, and then tell me": `unknown command "please deploy the billing service to production right now, and…". Type help for the list of commands.`,
	} {
		rep := e.ask(in)
		if !isError(rep) || string(rep.GetData()) != want {
			t.Errorf("%q: got %s %q, want error %q", in, rep.GetType(), rep.GetData(), want)
		}
	}
}

// A command help does not list for the user is not described to them.
func TestHelpCommandFollowsPolicy(t *testing.T) {
	pol, err := policy.Parse([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, router.Config{Policy: pol})
	var runs atomic.Int32
	e.serve("registry", registryCmd(&runs))
	waitFor(t, func() bool {
		return strings.Contains(string(e.askAs("UADMIN", "help").GetData()), "deregister service [name]")
	})
	if rep := e.askAs("UADMIN", "help deregister service"); !isReply(rep) || string(rep.GetData()) != "deregister service [name] - removes a service" {
		t.Errorf("admin: got %s %q", rep.GetType(), rep.GetData())
	}
	want := `There is no command "deregister service". Type help for the list of commands.`
	if rep := e.askAs("U1", "help deregister service"); !isError(rep) || string(rep.GetData()) != want {
		t.Errorf("other user: got %s %q, want error %q", rep.GetType(), rep.GetData(), want)
	}
}

// askIn sends text as a gateway of platform would, with the meta it sets,
// and returns the reply.
func (e *env) askIn(platform string, meta map[string]string, text string) *chatopsv1.Event {
	e.t.Helper()
	reply := chatopsv1.ReplySubject(platform, "gw", nuid.Next())
	sub, err := e.nc.SubscribeSync(reply)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ev := &chatopsv1.Event{Id: nuid.Next(), Type: chatopsv1.EventType_EVENT_TYPE_MESSAGE, From: &chatopsv1.Peer{Id: "U1"}, To: "C1",
		Data: []byte(text), Platform: platform, Gateway: "gw", ReplyTo: reply, Meta: meta}
	if err := e.nc.Publish(chatopsv1.SubjectIn(platform), mustMarshal(e.t, ev)); err != nil {
		e.t.Fatal(err)
	}
	return e.await(sub, 10*time.Second)
}

// In a room help ends with how to address the bot there, and no answer
// tells the user to type a plain help, which the room's gateway ignores.
// A direct conversation is told to type help.
func TestHelpInRoom(t *testing.T) {
	e := helpEnv(t, router.Config{})
	dm := string(e.ask("help").GetData())
	if strings.Contains(dm, "address me") {
		t.Errorf("help in a direct conversation tells how to address the bot:\n%s", dm)
	}
	const address = "botmesh: help, @botmesh help or !help"
	for _, tc := range []struct {
		name, platform string
		meta           map[string]string
		line, typeHelp string
	}{
		{"gateway says room and address", "irc", map[string]string{router.MetaRoom: "true", router.MetaAddress: address},
			"In channels, address me like this: botmesh: help, @botmesh help or !help.", "For the list of commands, type botmesh: help, @botmesh help or !help."},
		{"xmpp groupchat, older gateway", "xmpp", map[string]string{"xmpp.type": "groupchat"},
			"In channels, address me by my name first (name: help or @name help), or start with the command prefix (!help by default).", "For the list of commands, address help to me by name."},
		{"irc channel, older gateway", "irc", map[string]string{"irc.target": "#ops"},
			"In channels, address me by my name first (name: help or @name help), or start with the command prefix (!help by default).", "For the list of commands, address help to me by name."},
		{"slack channel, older gateway", "slack", map[string]string{"slack.channel_type": "channel"},
			"In channels, address me by my name first (name: help or @name help), or start with the command prefix (!help by default).", "For the list of commands, address help to me by name."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			help := string(e.askIn(tc.platform, tc.meta, "help").GetData())
			if want := dm + "\n" + tc.line; help != want {
				t.Errorf("help =\n%s\nwant\n%s", help, want)
			}
			for in, want := range map[string]string{
				"ecko hi":   `unknown command "ecko". Did you mean "echo"? ` + tc.typeHelp,
				"help ecko": `There is no command "ecko". Did you mean "echo"? ` + tc.typeHelp,
				"\u200b":    "empty message. " + tc.typeHelp,
			} {
				if rep := e.askIn(tc.platform, tc.meta, in); !isError(rep) || string(rep.GetData()) != want {
					t.Errorf("%q: got %s %q, want error %q", in, rep.GetType(), rep.GetData(), want)
				}
			}
		})
	}
	// Direct conversations on the same platforms.
	for platform, meta := range map[string]map[string]string{
		"xmpp":  {"xmpp.type": "chat"},
		"irc":   {"irc.target": "ada"},
		"slack": {"slack.channel_type": "im"},
	} {
		if rep := e.askIn(platform, meta, "ecko"); string(rep.GetData()) != `unknown command "ecko". Did you mean "echo"? Type help for the list of commands.` {
			t.Errorf("%s direct: %q", platform, rep.GetData())
		}
	}
}
