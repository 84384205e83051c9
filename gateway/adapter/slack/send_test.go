package slackgw_test

import (
	"context"
	"fmt"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/fakeslack"
	slackgw "github.com/botmesh/botmesh/gateway/adapter/slack"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

const (
	replyType = chatopsv1.EventType_EVENT_TYPE_REPLY
	errorType = chatopsv1.EventType_EVENT_TYPE_ERROR
)

// asked sends a mention through the socket and returns the Event the
// input made of it.
func asked(t *testing.T, fs *fakeslack.Server, in *slackgw.Input, m fakeslack.Said) *chatopsv1.Event {
	t.Helper()
	fs.WaitAck(t, fs.Send(t, m.Envelope()), 3*time.Second)
	return recv(t, in, 5*time.Second)
}

func send(t *testing.T, in *slackgw.Input, ev *chatopsv1.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := in.Send(ctx, ev); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// lines returns n numbered lines of about width characters.
func lines(n, width int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%05d %s\n", i, strings.Repeat("x", width-6))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// unfence returns the text inside a message's code block.
func unfence(t *testing.T, text string) string {
	t.Helper()
	if !strings.HasPrefix(text, "```\n") || !strings.HasSuffix(text, "\n```") {
		t.Fatalf("not a code block: %.60q…", text)
	}
	return strings.TrimSuffix(strings.TrimPrefix(text, "```\n"), "\n```")
}

// Replies go into the thread of the message: short ones as they are,
// multi-line ones in a code block, errors marked, markup characters shown
// as typed (a result cannot ping @channel).
func TestSendReplies(t *testing.T) {
	fs := fakeslack.New(t)
	in := startInput(t, fs, nil)
	m := fs.Mention(general, user, "help", "")
	ev := asked(t, fs, in, m)

	for _, tc := range []struct {
		name     string
		typ      chatopsv1.EventType
		data     string
		text     string // as sent to Slack
		visible  string // as read
		errorBar bool
	}{
		{"one line", replyType, "pong", "pong", "pong", false},
		{"multi-line in a code block", replyType, "echo [text] - Returns the [text]\nhelp - Displays help\n", "```\necho [text] - Returns the [text]\nhelp - Displays help\n```", "```\necho [text] - Returns the [text]\nhelp - Displays help\n```", false},
		{"markup escaped", replyType, "<!channel> <@UBEA0002> a&b", "&lt;!channel&gt; &lt;@UBEA0002&gt; a&amp;b", "<!channel> <@UBEA0002> a&b", false},
		{"fence inside a code block", replyType, "a\n```\nb", "```\na\n`\u200b`\u200b`\nb\n```", "```\na\n`\u200b`\u200b`\nb\n```", false},
		{"error marked", errorType, `unknown command "ehco". Did you mean "echo"?`, "", `unknown command "ehco". Did you mean "echo"?`, true},
		{"empty", replyType, "  \n", "(no output)", "(no output)", false},
		{"invalid UTF-8 replaced", replyType, "caf\xe9", "caf\uFFFD", "caf\uFFFD", false},
		{"progress note", chatopsv1.EventType_EVENT_TYPE_PROGRESS, "working on it…", "working on it…", "working on it…", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			send(t, in, reply(ev, tc.typ, tc.data))
			p := fs.NextPost(t, 5*time.Second)
			if p.Method != "chat.postMessage" || p.Channel != general || p.ThreadTS != m.TS {
				t.Errorf("posted with %s in %s thread %q, want chat.postMessage in %s thread %q", p.Method, p.Channel, p.ThreadTS, general, m.TS)
			}
			if p.Text != tc.text || p.Visible() != tc.visible || p.IsError() != tc.errorBar {
				t.Errorf("posted text %q (reads %q, error %v), want %q (reads %q, error %v)", p.Text, p.Visible(), p.IsError(), tc.text, tc.visible, tc.errorBar)
			}
			if tc.errorBar && !strings.HasPrefix(p.Attachments[0].Fallback, "Error: ") {
				t.Errorf("notification text %q does not say error", p.Attachments[0].Fallback)
			}
		})
	}
	fs.NoPost(t, 100*time.Millisecond)
}

// A reply longer than one message is split at line breaks into several,
// in order, in the thread; nothing is lost.
func TestSendSplitsLongReplies(t *testing.T) {
	fs := fakeslack.New(t)
	in := startInput(t, fs, nil)
	m := fs.DM(dm, user, "list services", "")
	ev := asked(t, fs, in, m)

	for _, tc := range []struct {
		name  string
		data  string
		parts int
	}{
		{"lines", lines(200, 50), 3},                                         // 10,199 characters
		{"one long line", strings.Repeat("abcdefghij", 1000), 3},             // no break to split at
		{"words", strings.TrimSpace(strings.Repeat("lorem ipsum ", 700)), 3}, // 8,399 characters
		{"escaped characters count", strings.Repeat("<&>", 1000), 4},         // 3,000 characters, 13,000 escaped
	} {
		t.Run(tc.name, func(t *testing.T) {
			send(t, in, reply(ev, replyType, tc.data))
			var got []string
			for range tc.parts {
				p := fs.NextPost(t, 5*time.Second)
				if p.ThreadTS != m.TS || p.Channel != dm {
					t.Errorf("part in %s thread %q", p.Channel, p.ThreadTS)
				}
				if n := utf8.RuneCountInString(p.Text); n > 4000 {
					t.Errorf("part of %d characters, over Slack's 4,000", n)
				}
				text := p.Visible()
				if strings.Contains(tc.data, "\n") {
					text = unfence(t, text)
				}
				got = append(got, text)
			}
			fs.NoPost(t, 100*time.Millisecond)
			sep := ""
			if strings.Contains(tc.data, "\n") {
				sep = "\n" // the line break a split was made at
			}
			if joined := strings.Join(got, sep); joined != tc.data {
				t.Errorf("parts joined give %d characters, want the %d of the reply", len(joined), len(tc.data))
			}
		})
	}
}

// A reply longer than 4 messages is uploaded as a file in the thread,
// whole, with a comment that says why.
func TestSendUploadsVeryLongReplies(t *testing.T) {
	fs := fakeslack.New(t)
	in := startInput(t, fs, nil)
	m := fs.Mention(general, user, "query big", "")
	ev := asked(t, fs, in, m)
	data := lines(1000, 60) // 60,999 characters

	send(t, in, reply(ev, replyType, data))
	p := fs.NextPost(t, 5*time.Second)
	if p.Method != "files.completeUploadExternal" || p.Channel != general || p.ThreadTS != m.TS {
		t.Fatalf("posted with %s in %s thread %q, want a file in %s thread %q", p.Method, p.Channel, p.ThreadTS, general, m.TS)
	}
	if p.File.Content != data || p.File.Name != "reply.txt" || p.File.SnippetType != "text" {
		t.Errorf("file %s (%s, %d bytes), want reply.txt with the whole reply (%d bytes)", p.File.Name, p.File.SnippetType, len(p.File.Content), len(data))
	}
	if want := "The reply is 60999 characters long"; !strings.HasPrefix(p.Visible(), want) {
		t.Errorf("comment %q, want it to start %q", p.Visible(), want)
	}
	fs.NoPost(t, 100*time.Millisecond)
	if n := fs.Calls("chat.postMessage"); n != 0 {
		t.Errorf("%d chat.postMessage calls besides the file", n)
	}

	send(t, in, reply(ev, errorType, data))
	if p := fs.NextPost(t, 5*time.Second); p.File == nil || p.File.Name != "error.txt" || !strings.HasPrefix(p.Visible(), ":warning: Error") {
		t.Errorf("long error: %s %q", p.Method, p.Visible())
	}
}

// Slack's 429 is waited out (Retry-After) and the post made once; a wait
// past the deadline fails at once, saying so.
func TestSendRateLimited(t *testing.T) {
	fs := fakeslack.New(t)
	logs := &meshtest.Buffer{}
	in := startInput(t, fs, logs)
	ev := asked(t, fs, in, fs.Mention(general, user, "ping", ""))

	fs.RateLimit("chat.postMessage", 1, 1)
	began := time.Now()
	send(t, in, reply(ev, replyType, "pong"))
	took := time.Since(began)
	t.Logf("measured: reply posted %s after a 429 with Retry-After: 1", took.Round(time.Millisecond))
	if p := fs.NextPost(t, time.Second); p.Visible() != "pong" {
		t.Errorf("posted %q", p.Visible())
	}
	fs.NoPost(t, 100*time.Millisecond)
	if n := fs.Calls("chat.postMessage"); n != 2 || took < time.Second {
		t.Errorf("%d calls in %s; want the 429 and one post after Retry-After (1s)", n, took)
	}
	if !strings.Contains(logs.String(), "rate limited by Slack; retrying") {
		t.Error("the rate limit is not logged")
	}

	fs.RateLimit("chat.postMessage", 1, 30)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	began = time.Now()
	err := in.Send(ctx, reply(ev, replyType, "too late"))
	if err == nil || !strings.Contains(err.Error(), "beyond the deadline") || time.Since(began) > time.Second {
		t.Errorf("Retry-After past the deadline: %v after %s", err, time.Since(began))
	}
	fs.NoPost(t, 100*time.Millisecond)
}

// Slash command replies go through the command's response_url: in the
// channel, or only to the caller with --slack_ephemeral; once the URL is
// used up (5 uses), with the bot token.
func TestSendSlashReplies(t *testing.T) {
	for _, ephemeral := range []bool{false, true} {
		t.Run(fmt.Sprintf("ephemeral=%v", ephemeral), func(t *testing.T) {
			fs := fakeslack.New(t)
			var args []string
			if ephemeral {
				args = append(args, "--slack_ephemeral")
			}
			in := startInput(t, fs, nil, args...)
			cmd := fs.Slash(general, user, "/bot", "echo hi")
			fs.WaitAck(t, fs.Send(t, fakeslack.SlashEnvelope(cmd)), 3*time.Second)
			ev := recv(t, in, 5*time.Second)

			for i := range 6 {
				send(t, in, reply(ev, replyType, fmt.Sprintf("hi %d", i)))
				p := fs.NextPost(t, 5*time.Second)
				want := "response_url"
				if i == 5 { // Slack allows 5 uses
					want = "chat.postMessage"
					if ephemeral {
						want = "chat.postEphemeral"
					}
				}
				if p.Method != want || p.Channel != general || p.Ephemeral() != ephemeral || p.Visible() != fmt.Sprintf("hi %d", i) {
					t.Errorf("reply %d: %s in %s (ephemeral %v) %q; want %s in %s", i, p.Method, p.Channel, p.Ephemeral(), p.Visible(), want, general)
				}
				if p.Method == "chat.postEphemeral" && p.User != user {
					t.Errorf("ephemeral reply shown to %q, want %q", p.User, user)
				}
			}
		})
	}
}

// A slash command's reply too long for messages is a file: in the
// channel, or in the caller's DM with the bot (noted ephemerally) when
// replies are ephemeral; when the upload fails the caller is told why.
func TestSendSlashVeryLongReplies(t *testing.T) {
	data := lines(600, 60)
	t.Run("in channel", func(t *testing.T) {
		fs := fakeslack.New(t)
		in := startInput(t, fs, nil)
		cmd := fs.Slash(general, user, "/bot", "query big")
		fs.WaitAck(t, fs.Send(t, fakeslack.SlashEnvelope(cmd)), 3*time.Second)
		send(t, in, reply(recv(t, in, 5*time.Second), replyType, data))
		p := fs.NextPost(t, 5*time.Second)
		if p.File == nil || p.File.Content != data || p.Channel != general || p.ThreadTS != "" {
			t.Errorf("posted %s in %s thread %q", p.Method, p.Channel, p.ThreadTS)
		}
		fs.NoPost(t, 100*time.Millisecond)
	})
	t.Run("ephemeral", func(t *testing.T) {
		fs := fakeslack.New(t)
		in := startInput(t, fs, nil, "--slack_ephemeral")
		cmd := fs.Slash(general, user, "/bot", "query big")
		fs.WaitAck(t, fs.Send(t, fakeslack.SlashEnvelope(cmd)), 3*time.Second)
		send(t, in, reply(recv(t, in, 5*time.Second), replyType, data))
		file := fs.NextPost(t, 5*time.Second)
		note := fs.NextPost(t, 5*time.Second)
		if file.File == nil || file.File.Content != data || file.Channel != "D"+user {
			t.Errorf("file: %s in %s", file.Method, file.Channel)
		}
		if note.Method != "response_url" || !note.Ephemeral() || !strings.Contains(note.Visible(), "in your direct messages with the bot") {
			t.Errorf("note: %s ephemeral %v %q", note.Method, note.Ephemeral(), note.Visible())
		}
	})
	t.Run("upload refused", func(t *testing.T) {
		fs := fakeslack.New(t)
		fs.NotMember(general)
		in := startInput(t, fs, nil)
		cmd := fs.Slash(general, user, "/bot", "query big")
		fs.WaitAck(t, fs.Send(t, fakeslack.SlashEnvelope(cmd)), 3*time.Second)
		ev := recv(t, in, 5*time.Second)
		err := in.Send(context.Background(), reply(ev, replyType, data))
		if err == nil || !strings.Contains(err.Error(), "not_in_channel") {
			t.Errorf("send: %v, want the upload's not_in_channel", err)
		}
		note := fs.NextPost(t, 5*time.Second)
		if note.Method != "response_url" || !note.IsError() || !strings.Contains(note.Visible(), "not_in_channel") || !strings.Contains(note.Visible(), "36599 characters") {
			t.Errorf("note: %s error %v %q", note.Method, note.IsError(), note.Visible())
		}
	})
}

// A response_url that is not Slack's (the URL travels through the mesh) is
// never posted to; the reply goes with the bot token instead.
func TestSendRefusesForeignResponseURL(t *testing.T) {
	fs := fakeslack.New(t)
	in := startInput(t, fs, nil)
	var hits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer evil.Close()
	cmd := fs.Slash(general, user, "/bot", "echo hi")
	fs.WaitAck(t, fs.Send(t, fakeslack.SlashEnvelope(cmd)), 3*time.Second)
	ev := recv(t, in, 5*time.Second)
	ev.Meta[slackgw.MetaResponseURL] = evil.URL + "/steal"
	send(t, in, reply(ev, replyType, "hi"))
	if p := fs.NextPost(t, 5*time.Second); p.Method != "chat.postMessage" || p.Channel != general || p.Visible() != "hi" {
		t.Errorf("posted %s in %s: %q", p.Method, p.Channel, p.Visible())
	}
	if hits.Load() != 0 {
		t.Error("the foreign response_url was called")
	}
}

// A reply Slack refuses comes back as an error naming the part and the
// reason, for the gateway to log.
func TestSendReportsFailures(t *testing.T) {
	fs := fakeslack.New(t)
	in := startInput(t, fs, nil)
	ev := asked(t, fs, in, fs.Mention(general, user, "ping", ""))
	fs.NotMember(general)
	err := in.Send(context.Background(), reply(ev, replyType, "pong"))
	if err == nil || !strings.Contains(err.Error(), "not_in_channel") || !strings.Contains(err.Error(), "slack: post reply part 1 of 1 to "+general) {
		t.Errorf("send: %v", err)
	}
	if err := slackgw.NewInput().Send(context.Background(), ev); err == nil {
		t.Error("send before start succeeded")
	}
}
