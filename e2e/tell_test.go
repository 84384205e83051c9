package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/ircdtest"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/prosodytest"
)

// tell across real chat servers: a user of XMPP (Prosody) tells an IRC
// channel (ngircd), and a user in that channel tells an XMPP room. Each
// asker is told where the result went, and the other conversation gets
// the result headed by who asked from where.
func TestTellAcrossPlatforms(t *testing.T) {
	irc := ircdtest.Start(t)
	xmpp := xmppServer(t)
	room := prosodytest.Room("ops")
	xmppMesh(t, ircInput(t, irc), xmppInput(t, xmpp, "--xmpp_rooms="+room))

	alice := xmpp.Login(t, "alice", xmppAlicePassword)
	alice.Subscribe(t, xmppBot)
	alice.Join(t, room, "alice")
	bob := irc.Connect(t, "bob", false)
	bob.Join(t, ircChannel)
	alice.WaitOnline(t, xmppBot, 30*time.Second)
	bob.WaitMember(t, ircChannel, ircNick, 30*time.Second)

	alice.Say(t, xmppBot, "tell irc:"+ircChannel+" echo hello ops")
	if m := alice.NextFrom(t, xmppBot, 20*time.Second); m.Body != "told irc:"+ircChannel {
		t.Errorf("alice was told %q", m.Body)
	}
	head := bob.NextFrom(t, ircNick, 20*time.Second)
	if head.Target != ircChannel || !strings.HasPrefix(head.Text, "alice (xmpp:") || !strings.HasSuffix(head.Text, ") asked: echo hello ops") {
		t.Errorf("the IRC channel got %q to %s, want who asked from where", head.Text, head.Target)
	}
	if m := bob.NextFrom(t, ircNick, 20*time.Second); m.Target != ircChannel || m.Text != "hello ops" {
		t.Errorf("the IRC channel got %q to %s, want the result", m.Text, m.Target)
	}

	bot := room + "/" + xmppNick
	alice.WaitOnline(t, bot, 15*time.Second)
	bob.Say(t, ircChannel, ircNick+": tell xmpp:"+room+"?join echo hi room")
	if m := bob.NextFrom(t, ircNick, 20*time.Second); m.Text != "bob: told xmpp:"+room+"?join" {
		t.Errorf("bob was told %q", m.Text)
	}
	if m := alice.NextFrom(t, bot, 20*time.Second); m.Type != "groupchat" || m.Body != "bob (irc:"+ircChannel+") asked: echo hi room\nhi room" {
		t.Errorf("the XMPP room got %s %q", m.Type, m.Body)
	}
	// A web chat session cannot be told.
	alice.Say(t, xmppBot, "tell web:abc ping")
	if m := alice.NextFrom(t, xmppBot, 20*time.Second); !strings.Contains(m.Body, "tell cannot post to web") {
		t.Errorf("tell web: %q", m.Body)
	}
}
