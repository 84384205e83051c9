package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/smtpdtest"
	"github.com/botmesh/botmesh/gateway/adapter/mail"
	"github.com/botmesh/botmesh/internal/allinone"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/botmesh/botmesh/sdk/secret"
)

// mail ADDRESS COMMAND through the whole mesh to a real SMTP server
// (OpenSMTPD delivering to a maildir) that is down when the mail is
// asked for: the mail waits on the outbound path and arrives, once, when
// the server has started; its non-ASCII subject and body arrive intact.
// A recipient outside the mail domains is refused with a sentence.
func TestMailThroughTheMesh(t *testing.T) {
	srv := smtpdtest.New(t) // not started yet
	out, err := mail.NewWith(mail.Config{URL: secret.Value(srv.URL()), From: "botmesh <bot@example.com>", Timeout: 5 * time.Second}, meshtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	in := adaptertest.New("test")
	rcfg := router.Config{Timeout: 10 * time.Second, MailDomains: smtpdtest.Domain}
	runAllInOne(t, allinone.Config{Router: rcfg, Gateway: gateway.Config{ReplyTimeout: 15 * time.Second}}, nil, in, out)

	const cmd = "echo Grüße, 東京 ✓"
	rep := ask(t, in, "mail alice@example.com "+cmd)
	if want := "mailing the result of `" + cmd + "` to alice@example.com"; rep.Type != chatopsv1.EventType_EVENT_TYPE_REPLY || string(rep.Data) != want {
		t.Fatalf("mail: %s %q, want %q", rep.Type, rep.Data, want)
	}
	if rep := ask(t, in, "mail bob@elsewhere.org echo hi"); rep.Type != chatopsv1.EventType_EVENT_TYPE_ERROR || !strings.Contains(string(rep.Data), "mail does not go to elsewhere.org") {
		t.Errorf("mail outside the domains: %s %q", rep.Type, rep.Data)
	}
	if rep := ask(t, in, "mail alice echo hi"); rep.Type != chatopsv1.EventType_EVENT_TYPE_ERROR || !strings.Contains(string(rep.Data), `"alice" is not a mail address`) {
		t.Errorf("a bad address: %s %q", rep.Type, rep.Data)
	}

	// The output has tried, and failed, by now.
	time.Sleep(2 * time.Second)
	srv.Start(t)
	got := srv.WaitMails(t, 1, 45*time.Second)
	if len(got) != 1 {
		t.Fatalf("%d mails delivered within 45s of the SMTP server's start, want 1", len(got))
	}
	m := got[0]
	if m.Subject != "botmesh: "+cmd || !strings.HasPrefix(m.RawSubject, "=?UTF-8?") {
		t.Errorf("subject %q (on the wire %q)", m.Subject, m.RawSubject)
	}
	if body, want := strings.TrimRight(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n"), "ada (test:C1) asked: "+cmd+"\nGrüße, 東京 ✓"; body != want {
		t.Errorf("body %q, want %q", body, want)
	}
	// Once: no copy follows.
	if got := srv.WaitMails(t, 2, 3*time.Second); len(got) != 1 {
		t.Errorf("%d mails delivered, want 1", len(got))
	}
}
