package slackgw

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/slack-go/slack"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fixtureBot is the bot the fixtures were recorded for.
var fixtureBot = identity{UserID: "UBOT0001", BotID: "BBOT0001", TeamID: "T0001", Name: "botmesh", Prefix: "!"}

// want is a fixture's expected result, written by hand: the Event, or why
// the event is ignored.
type want struct {
	Ignored string            `json:"ignored"`
	ID      string            `json:"id"`
	From    wantPeer          `json:"from"`
	To      string            `json:"to"`
	Data    string            `json:"data"`
	Thread  string            `json:"thread"`
	Time    string            `json:"time"`
	Meta    map[string]string `json:"meta"`
}

type wantPeer struct{ ID, Name, Team string }

func (w want) event(t *testing.T) *chatopsv1.Event {
	ev := &chatopsv1.Event{
		Id: w.ID, From: &chatopsv1.Peer{Id: w.From.ID, Name: w.From.Name, Team: w.From.Team},
		To: w.To, Data: []byte(w.Data), Thread: w.Thread, Meta: w.Meta,
	}
	if w.Time != "" {
		tm, err := time.Parse(time.RFC3339Nano, w.Time)
		if err != nil {
			t.Fatal(err)
		}
		ev.Time = timestamppb.New(tm)
	}
	return ev
}

func readWant(t *testing.T, path string) want {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var w want
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return w
}

func check(t *testing.T, w want, got *chatopsv1.Event, skip string) {
	t.Helper()
	if w.Ignored != "" {
		if got != nil || skip != w.Ignored {
			t.Errorf("got event %v, ignored %q; want it ignored: %q", got, skip, w.Ignored)
		}
		return
	}
	if got == nil {
		t.Fatalf("ignored (%s); want an event", skip)
	}
	if exp := w.event(t); !proto.Equal(exp, got) {
		t.Errorf("event:\n%s\nwant:\n%s", prototext.Format(got), prototext.Format(exp))
	}
}

// Every Events API fixture (raw Slack JSON) gives the Event written by hand
// next to it, or is ignored for the reason given.
func TestNormalizeEventFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".want.json") || strings.HasPrefix(filepath.Base(f), "slash_") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ev, skip, err := normalizeEvent(raw, fixtureBot)
			if err != nil {
				t.Fatalf("normalize: %v", err)
			}
			check(t, readWant(t, strings.TrimSuffix(f, ".json")+".want.json"), ev, skip)
		})
	}
	if n < 20 {
		t.Fatalf("%d event fixtures; some are missing", n)
	}
}

// Slash command fixtures: the Socket Mode payload (JSON) and the http
// mode body (a form) give the same Event.
func TestNormalizeSlashFixtures(t *testing.T) {
	for _, name := range []string{"slash_command", "slash_command_bare", "slash_command_other"} {
		t.Run(name, func(t *testing.T) {
			w := readWant(t, "testdata/events/"+name+".want.json")
			raw, err := os.ReadFile("testdata/events/" + name + ".json")
			if err != nil {
				t.Fatal(err)
			}
			var cmd slack.SlashCommand
			if err := json.Unmarshal(raw, &cmd); err != nil {
				t.Fatal(err)
			}
			ev, skip, err := normalizeSlash(cmd, "/bot", false, fixtureBot)
			if err != nil {
				t.Fatal(err)
			}
			check(t, w, ev, skip)
		})
	}
	t.Run("form", func(t *testing.T) {
		body, err := os.ReadFile("testdata/events/slash_command.form")
		if err != nil {
			t.Fatal(err)
		}
		r, _ := http.NewRequest(http.MethodPost, "/slack/commands", bytes.NewReader(bytes.TrimSpace(body)))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		cmd, err := slack.SlashCommandParse(r)
		if err != nil {
			t.Fatal(err)
		}
		ev, skip, err := normalizeSlash(cmd, "/bot", false, fixtureBot)
		if err != nil {
			t.Fatal(err)
		}
		check(t, readWant(t, "testdata/events/slash_command.want.json"), ev, skip)
	})
	t.Run("ephemeral", func(t *testing.T) {
		raw, _ := os.ReadFile("testdata/events/slash_command.json")
		var cmd slack.SlashCommand
		if err := json.Unmarshal(raw, &cmd); err != nil {
			t.Fatal(err)
		}
		ev, _, err := normalizeSlash(cmd, "/bot", true, fixtureBot)
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.GetMeta()[MetaResponseType]; got != "ephemeral" {
			t.Errorf("response type %q, want ephemeral", got)
		}
	})
	t.Run("no response_url", func(t *testing.T) {
		_, _, err := normalizeSlash(slack.SlashCommand{Command: "/bot", UserID: "U1", ChannelID: "C1", Text: "ping"}, "/bot", false, fixtureBot)
		if !errors.Is(err, errMalformed) {
			t.Errorf("err %v, want errMalformed", err)
		}
	})
}

// Events that are not what they claim to be are errors, not events.
func TestNormalizeEventMalformed(t *testing.T) {
	for name, raw := range map[string]string{
		"not JSON":          `{"type":"event_callback",`,
		"event not object":  `{"type":"event_callback","event_id":"Ev1","event":"app_mention"}`,
		"no event":          `{"type":"event_callback","event_id":"Ev1"}`,
		"no event_id":       `{"type":"event_callback","event":{"type":"app_mention","user":"U1","text":"hi","channel":"C1","ts":"1.2"}}`,
		"mention no ts":     `{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention","user":"U1","text":"<@UBOT0001> hi","channel":"C1"}}`,
		"dm no channel":     `{"type":"event_callback","event_id":"Ev1","event":{"type":"message","channel_type":"im","user":"U1","text":"hi","ts":"1.2"}}`,
		"text not a string": `{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention","user":"U1","text":5,"channel":"C1","ts":"1.2"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			ev, _, err := normalizeEvent([]byte(raw), fixtureBot)
			if !errors.Is(err, errMalformed) || ev != nil {
				t.Errorf("got %v, %v; want errMalformed", ev, err)
			}
		})
	}
}

func TestPlainText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<@UBOT0001> ping", "ping"},
		{"<@UBOT0001|botmesh> ping", "ping"},
		{"ping <@UBOT0001>", "ping"},
		{"hey <@UBOT0001>, ping", "hey , ping"},
		{"<@UBEA0002> ping", "@UBEA0002 ping"},
		{"<@UBEA0002|bea> ping", "@bea ping"},
		{"<#C1|ops>", "#ops"},
		{"<#C1>", "#C1"},
		{"<!channel> <!everyone>", "@channel @everyone"},
		{"<!date^1392734382^{date}|Feb 18, 2014>", "Feb 18, 2014"},
		{"<http://a.b/c|a.b/c>", "a.b/c"},
		{"<http://a.b/c>", "http://a.b/c"},
		{"1 &lt; 2 &amp;&amp; 3 &gt; 2", "1 < 2 && 3 > 2"},
		{"&amp;lt;", "&lt;"},
		{"unclosed <http://x", "unclosed <http://x"},
		{"  multi\n  line  ", "multi\n  line"},
		{"", ""},
	} {
		if got := plainText(tc.in, "UBOT0001"); got != tc.want {
			t.Errorf("plainText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzNormalizeEvent feeds arbitrary JSON to the normaliser: it must not
// panic, must be deterministic, and every Event it returns must be one the
// gateway can publish and answer.
func FuzzNormalizeEvent(f *testing.F) {
	files, _ := filepath.Glob("testdata/events/*.json")
	for _, file := range files {
		if strings.HasSuffix(file, ".want.json") || strings.HasPrefix(filepath.Base(file), "slash_") {
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, skip, err := normalizeEvent(raw, fixtureBot)
		ev2, skip2, err2 := normalizeEvent(raw, fixtureBot)
		if !proto.Equal(ev, ev2) || skip != skip2 || (err == nil) != (err2 == nil) {
			t.Fatalf("not deterministic: %v/%q/%v then %v/%q/%v", ev, skip, err, ev2, skip2, err2)
		}
		switch {
		case err != nil:
			if ev != nil || !errors.Is(err, errMalformed) {
				t.Fatalf("error %v with event %v", err, ev)
			}
			return
		case ev == nil:
			if skip == "" {
				t.Fatal("no event, no error and no reason")
			}
			return
		}
		data := string(ev.GetData())
		switch {
		case ev.GetId() == "", ev.GetTo() == "", ev.GetThread() == "", ev.GetFrom().GetId() == "":
			t.Fatalf("event lacks id, to, thread or sender: %v", ev)
		case ev.GetFrom().GetId() == fixtureBot.UserID || ev.GetFrom().GetBot():
			t.Fatalf("the bot's own message passed: %v", ev)
		case data == "" || data != strings.TrimSpace(data) || !utf8.ValidString(data):
			t.Fatalf("data %q: want trimmed, non-empty UTF-8", data)
		case ev.GetMeta()[MetaTS] == "":
			t.Fatalf("no %s in meta: %v", MetaTS, ev)
		}
		if _, err := proto.Marshal(ev); err != nil {
			t.Fatalf("event does not marshal: %v", err)
		}
	})
}

// The addressing rule on Slack: a channel message is for the bot when it
// starts with its mention (with or without a label), its name and ":" or
// ",", or the prefix; a direct message always is.
func TestSlackAddressing(t *testing.T) {
	event := func(typ, channelType, text string) []byte {
		ev := map[string]any{"type": typ, "user": "UADA0001", "text": text, "channel": "C1", "ts": "1700000000.000100"}
		if channelType != "" {
			ev["channel_type"] = channelType
		}
		b, err := json.Marshal(map[string]any{"type": "event_callback", "event_id": "Ev1", "team_id": "T0001", "event": ev})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		typ, channelType, text, want string // want "": ignored
	}{
		{"app_mention", "", "<@UBOT0001> ping", "ping"},
		{"app_mention", "", "<@UBOT0001|botmesh> ping", "ping"},
		{"app_mention", "", "  <@UBOT0001>: echo hi", "echo hi"},
		{"app_mention", "", "ping <@UBOT0001>", ""},
		{"app_mention", "", "<@UBOT0001|botmesh>ping", ""},
		{"message", "channel", "!ping", "ping"},
		{"message", "channel", "botmesh: ping", "ping"},
		{"message", "group", "botmesh, ping", "ping"},
		{"message", "channel", "botmesh ping", ""},
		{"message", "channel", "<@UBOT0001> ping", ""}, // its app_mention is the one answered
		{"message", "im", "ping", "ping"},
		{"message", "im", "!ping", "ping"},
		{"message", "im", "<@UBOT0001|botmesh> ping", "ping"},
	} {
		ev, skip, err := normalizeEvent(event(tc.typ, tc.channelType, tc.text), fixtureBot)
		if err != nil {
			t.Fatalf("%s %q: %v", tc.typ, tc.text, err)
		}
		got := string(ev.GetData())
		if got != tc.want {
			t.Errorf("%s in %q %q: event %q (ignored: %q), want %q", tc.typ, tc.channelType, tc.text, got, skip, tc.want)
		}
	}
}
