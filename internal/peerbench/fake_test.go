package peerbench

import (
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/prosodytest"
)

// fakeSession is an XMPP session logged in as the errbot account, playing
// a bot.
type fakeSession struct {
	h *harness
	c *prosodytest.Client
}

func loginFake(t *testing.T, h *harness, srv xmppServer) *fakeSession {
	t.Helper()
	f := &fakeSession{h: h}
	ps := &prosodytest.Server{Addr: srv.addr, CAFile: srv.caFile}
	if err := catch(func() { f.c = ps.Login(h, "errbot", srv.password) }); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeSession) next(d time.Duration) (m prosodytest.Message, ok bool) {
	err := catch(func() { m = f.c.Next(f.h, d) })
	return m, err == nil
}

func (f *fakeSession) say(to, text string) { _ = catch(func() { f.c.Say(f.h, to, text) }) }
