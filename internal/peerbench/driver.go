package peerbench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/prosodytest"
	"github.com/botmesh/botmesh/internal/bench"
	"mellium.im/xmpp/stanza"
)

// user is one person of the driver, in a 1:1 chat with the bot.
type user struct {
	name string
	c    *prosodytest.Client
	seq  int
}

// driver plays the users against one bot at a time.
type driver struct {
	h      *harness
	users  []*user
	cfg    Config
	server int // Prosody's process
}

// errReply is a reply that is not the one the user waited for.
type errReply struct{ got, want string }

func (e errReply) Error() string { return fmt.Sprintf("replied %q instead of %q", e.got, e.want) }

// ask has u send "verb TOKEN" to b and wait for the reply TOKEN, up to
// timeout. With strict, any other reply from the bot is an error (a user
// has one command at a time in flight, so the next reply is its own);
// without, other replies (an earlier probe's) are dropped.
func (d *driver) ask(u *user, b *bot, verb string, timeout time.Duration, strict bool) (time.Duration, error) {
	u.seq++
	token := fmt.Sprintf("%s-%d", u.name, u.seq)
	to := prosodytest.JID(b.account)
	start := time.Now()
	if err := catch(func() { u.c.Say(d.h, to, verb+" "+token) }); err != nil {
		return 0, err
	}
	deadline := start.Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return time.Since(start), fmt.Errorf("%s: no reply to %q within %s", u.name, verb+" "+token, timeout)
		}
		var m prosodytest.Message
		if err := catch(func() { m = u.c.NextFrom(d.h, to, left) }); err != nil {
			return time.Since(start), fmt.Errorf("%s: no reply to %q within %s", u.name, verb+" "+token, timeout)
		}
		body := strings.TrimSpace(m.Body)
		switch {
		case m.Type == stanza.ErrorMessage:
			if strict || strings.Contains(body, token) {
				return time.Since(start), fmt.Errorf("%s: %q bounced (is %s online?)", u.name, verb+" "+token, b.name)
			}
		case body == token:
			return time.Since(start), nil
		case strict:
			return time.Since(start), errReply{got: body, want: token}
		}
	}
}

// ready waits until b answers verb (echo, slow) to every user, probing
// once a second within the config's StartTimeout.
func (d *driver) ready(ctx context.Context, b *bot, verb string, each time.Duration) error {
	deadline := time.Now().Add(d.cfg.StartTimeout)
	for _, u := range d.users {
		for {
			_, err := d.ask(u, b, verb, each, false)
			if err == nil {
				break
			}
			if e := b.exited(); e != nil {
				return e
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("peerbench: %s did not answer %q within %s: %v; its log ends:\n%s", b.name, verb, d.cfg.StartTimeout, err, bench.Tail(b.log, 3000))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// Phase is what one phase measured of one bot.
type Phase struct {
	// Commands is how many commands (echo) were answered; Slow how many
	// slow commands, when the phase had them.
	Commands int `json:"commands"`
	Slow     int `json:"slow,omitempty"`
	// PerSecond is Commands over the time from the first send to the last
	// reply to one of them.
	PerSecond float64 `json:"per_second"`
	// Latency is of the echo commands, from send to reply.
	Latency bench.Latency `json:"latency"`
	// CPUPerCommand is the bot process's CPU (user+system) over the phase
	// divided by Commands, in µs; ServerCPUPerCommand Prosody's.
	CPUPerCommand       float64 `json:"cpu_us_per_command"`
	ServerCPUPerCommand float64 `json:"server_cpu_us_per_command"`
}

// phase runs the echo commands of one phase against b: count of them
// one at a time, rotating among the users (count > 0), or every user
// asking in a loop for dur (count == 0), one of them asking slow instead
// when withSlow. It waits for every reply before returning.
func (d *driver) phase(ctx context.Context, b *bot, count int, dur time.Duration, withSlow bool) (Phase, error) {
	var (
		mu        sync.Mutex
		lat       []time.Duration
		slow      int
		last      time.Time
		firstErr  error
		wg        sync.WaitGroup
		replyWait = d.cfg.ReplyTimeout
	)
	if err := b.exited(); err != nil {
		return Phase{}, err
	}
	cpu0, err := bench.ProcessCPU(b.pid())
	if err != nil {
		return Phase{}, fmt.Errorf("peerbench: CPU of %s: %w", b.name, err)
	}
	server0, err := bench.ProcessCPU(d.server)
	if err != nil {
		return Phase{}, fmt.Errorf("peerbench: CPU of Prosody: %w", err)
	}
	start := time.Now()
	record := func(verb string, l time.Duration, err error) bool {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return false
		}
		if verb == "slow" {
			// Not counted in the rate: the last slow command may end
			// well after the others' last reply.
			slow++
			return firstErr == nil
		}
		lat = append(lat, l)
		if t := time.Now(); t.After(last) {
			last = t
		}
		return firstErr == nil
	}
	if count > 0 {
		for i := range count {
			if ctx.Err() != nil {
				return Phase{}, ctx.Err()
			}
			l, err := d.ask(d.users[i%len(d.users)], b, "echo", replyWait, true)
			if !record("echo", l, err) {
				break
			}
		}
	} else {
		end := start.Add(dur)
		for i, u := range d.users {
			verb := "echo"
			if withSlow && i == 0 {
				verb = "slow"
			}
			wg.Go(func() {
				for time.Now().Before(end) && ctx.Err() == nil {
					l, err := d.ask(u, b, verb, replyWait+d.cfg.Slow, true)
					if !record(verb, l, err) {
						return
					}
				}
			})
		}
		wg.Wait()
	}
	if firstErr != nil {
		if e := b.exited(); e != nil {
			return Phase{}, e
		}
		return Phase{}, fmt.Errorf("peerbench: %s: %w", b.name, firstErr)
	}
	if err := ctx.Err(); err != nil {
		return Phase{}, err
	}
	cpu1, err := bench.ProcessCPU(b.pid())
	if err != nil {
		return Phase{}, fmt.Errorf("peerbench: CPU of %s: %w", b.name, err)
	}
	server1, err := bench.ProcessCPU(d.server)
	if err != nil {
		return Phase{}, fmt.Errorf("peerbench: CPU of Prosody: %w", err)
	}
	p := Phase{Commands: len(lat), Slow: slow, Latency: bench.Percentiles(lat)}
	if p.Commands > 0 {
		perCommand := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(p.Commands) }
		p.PerSecond = float64(p.Commands) / last.Sub(start).Seconds()
		p.CPUPerCommand = perCommand(cpu1 - cpu0)
		p.ServerCPUPerCommand = perCommand(server1 - server0)
	}
	return p, nil
}

// idle returns the bot's CPU in ms per second over dur with nothing to do.
func idle(ctx context.Context, b *bot, dur time.Duration) (float64, error) {
	cpu0, err := threadsCPU(b.pid())
	if err != nil {
		return 0, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(dur):
	}
	cpu1, err := threadsCPU(b.pid())
	if err != nil {
		return 0, err
	}
	return max(float64((cpu1-cpu0).Nanoseconds())/1e6/time.Since(start).Seconds(), 0), nil
}
