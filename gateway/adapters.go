package gateway

import (
	"github.com/botmesh/botmesh/gateway/adapter"
	ircgw "github.com/botmesh/botmesh/gateway/adapter/irc"
	"github.com/botmesh/botmesh/gateway/adapter/mail"
	"github.com/botmesh/botmesh/gateway/adapter/shell"
	slackgw "github.com/botmesh/botmesh/gateway/adapter/slack"
	"github.com/botmesh/botmesh/gateway/adapter/web"
	xmppgw "github.com/botmesh/botmesh/gateway/adapter/xmpp"
)

// Inputs returns every input this gateway binary can run, by name. It is
// the one place where inputs are wired in.
func Inputs() adapter.Registry {
	r := adapter.Registry{}
	r.Register(shell.Name, shell.New)
	r.Register(slackgw.Name, slackgw.New)
	r.Register(xmppgw.Name, xmppgw.New)
	r.Register(ircgw.Name, ircgw.New)
	r.Register(web.Name, web.New)
	r.Register(mail.Name, mail.New)
	return r
}
