package mail_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/smtpdtest"
	"github.com/botmesh/botmesh/gateway/adapter/mail"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/secret"
)

// output returns a mail output for the SMTP URL u, running until the test
// ends.
func output(t *testing.T, u string) *mail.Input {
	t.Helper()
	in, err := mail.NewWith(mail.Config{URL: secret.Value(u), From: "botmesh <bot@example.com>", Timeout: 10 * time.Second}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = in.Run(ctx, nil)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return in
}

const (
	subject = "botmesh: echo Grüße, 東京 ✓"
	body    = "alice (irc:#dev) asked: echo Grüße, 東京 ✓\nGrüße, 東京 ✓\n```\nNAME     NODES\ngreeter  1\n```"
)

func event(to string) *chatopsv1.Event {
	return &chatopsv1.Event{Id: "m4bcdefgh", Type: chatopsv1.EventType_EVENT_TYPE_REPLY, To: to, Platform: mail.Name,
		Data: []byte(body), Meta: map[string]string{mail.MetaSubject: subject}}
}

// A mail with non-ASCII text reaches a real SMTP server (OpenSMTPD, which
// delivers it to a maildir) intact: the subject RFC 2047 encoded and
// decoded back, the UTF-8 body with its monospace block as text.
func TestMailArrivesIntact(t *testing.T) {
	srv := smtpdtest.Start(t)
	in := output(t, srv.URL())
	if err := in.Send(context.Background(), event("Alice <alice@example.com>")); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := srv.WaitMails(t, 1, 10*time.Second)
	if len(got) != 1 {
		t.Fatalf("%d mails delivered, want 1", len(got))
	}
	{
		m := got[0]
		if m.Subject != subject || !strings.HasPrefix(m.RawSubject, "=?UTF-8?") {
			t.Errorf("subject %q (on the wire %q), want %q RFC 2047 encoded", m.Subject, m.RawSubject, subject)
		}
		if gotBody := strings.ReplaceAll(strings.TrimRight(m.Body, "\r\n"), "\r\n", "\n"); gotBody != body {
			t.Errorf("body:\n%q\nwant\n%q", gotBody, body)
		}
		if to := m.Header.Get("To"); !strings.Contains(to, "alice@example.com") {
			t.Errorf("To %q", to)
		}
		if from := m.Header.Get("From"); !strings.Contains(from, "bot@example.com") {
			t.Errorf("From %q", from)
		}
		if ct := m.Header.Get("Content-Type"); !strings.Contains(strings.ToLower(ct), "text/plain") || !strings.Contains(strings.ToLower(ct), "utf-8") {
			t.Errorf("Content-Type %q", ct)
		}
		if id := m.Header.Get("Message-Id"); id != "<m4bcdefgh@botmesh>" {
			t.Errorf("Message-ID %q, want one from the event id", id)
		}
	}
}

// While the SMTP server is down the mail is not posted, and Send says it
// may be later (adapter.ErrNotPosted: the gateway offers it again); once
// the server runs, the same mail goes through.
func TestMailServerDown(t *testing.T) {
	srv := smtpdtest.New(t)
	in := output(t, srv.URL())
	err := in.Send(context.Background(), event("alice@example.com"))
	if !errors.Is(err, adapter.ErrNotPosted) {
		t.Fatalf("send with the server down: %v, want an error wrapping adapter.ErrNotPosted", err)
	}
	srv.Start(t)
	if err := in.Send(context.Background(), event("alice@example.com")); err != nil {
		t.Fatalf("send once the server runs: %v", err)
	}
	if got := srv.WaitMails(t, 1, 10*time.Second); len(got) != 1 {
		t.Fatalf("%d mails, want 1", len(got))
	}
}

// A recipient the server refuses for good (550) is not offered again, nor
// is an address that is none.
func TestMailRefused(t *testing.T) {
	srv := smtpdtest.Start(t)
	in := output(t, srv.URL())
	err := in.Send(context.Background(), event("bob@elsewhere.org"))
	if err == nil || errors.Is(err, adapter.ErrNotPosted) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a refused recipient: %v, want a refusal that is not ErrNotPosted", err)
	}
	err = in.Send(context.Background(), event("not an address"))
	if err == nil || errors.Is(err, adapter.ErrNotPosted) || !strings.Contains(err.Error(), "is not a mail address") {
		t.Errorf("a bad address: %v, want a sentence, not ErrNotPosted", err)
	}
	if n := len(srv.Mails(t)); n != 0 {
		t.Errorf("%d mails delivered, want none", n)
	}
}

// A configuration that cannot work is refused with a sentence that never
// shows the password.
func TestMailConfig(t *testing.T) {
	for _, tc := range []struct{ url, from, want string }{
		{"", "bot@example.com", "set --smtp_url (BOTMESH_SMTP_URL)"},
		{"http://u:topsecret@host", "bot@example.com", `must start with smtp:// or smtps://, not "http://"`},
		{"smtp://u:topsecret@host:99999", "bot@example.com", `port "99999"`},
		{"smtp://u:topsecret@host:bad", "bot@example.com", "is not a URL of the form"},
		{"smtp://u:topsecret@host/path", "bot@example.com", "with nothing after the port"},
		{"smtp://u:topsecret@host", "", "set --smtp_from"},
		{"smtp://u:topsecret@host", "not an address", "is not a mail address"},
	} {
		_, err := mail.NewWith(mail.Config{URL: secret.Value(tc.url), From: tc.from}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "topsecret") {
			t.Errorf("url %q from %q: %v, want an error with %q and no password", tc.url, tc.from, err, tc.want)
		}
	}
	in := mail.New()
	if in.String() != mail.Name {
		t.Errorf("name %q", in.String())
	}
}
