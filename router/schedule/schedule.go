// Package schedule reads the arguments of the scheduling commands (in, at,
// every, cron) and turns them into a JetStream message schedule (ADR-51):
// the Nats-Schedule header's pattern, and its time zone for cron. It reads
// untrusted chat text, so it accepts any input and refuses bad input with a
// sentence a user can act on.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	// Routers run in scratch images without a zoneinfo directory: the
	// zone names users type (Europe/Berlin) must load all the same.
	_ "time/tzdata"
)

// Kind is how a schedule fires.
type Kind int

// Kinds of schedule.
const (
	In    Kind = iota + 1 // once, after a delay
	At                    // once, at a time
	Every                 // repeatedly, at an interval
	Cron                  // repeatedly, on a cron expression
)

// Limits of durations: nats-server fires @every at most once a second; a
// delay or interval over a year is more likely a typo than a plan.
const (
	MinDuration = time.Second
	MaxDuration = 366 * 24 * time.Hour
)

// Verbs are the command words of the scheduling commands.
var Verbs = []string{"in", "at", "every", "cron"}

// IsVerb reports whether word (any case) starts a scheduling command.
func IsVerb(word string) bool {
	for _, v := range Verbs {
		if strings.EqualFold(word, v) {
			return true
		}
	}
	return false
}

// Usages of the scheduling commands, as help shows them.
const (
	UsageIn    = "in DURATION COMMAND"
	UsageAt    = "at TIME [ZONE] COMMAND"
	UsageEvery = "every DURATION COMMAND"
	UsageCron  = `cron "S M H DOM MON DOW" [ZONE] COMMAND`
)

// Spec is a parsed scheduling command.
type Spec struct {
	Kind Kind
	// Pattern is the value of the Nats-Schedule header: "@at <RFC 3339
	// UTC>", "@every <duration>", a six-field cron expression or one of
	// nats-server's predefined ones (@hourly, @daily…).
	Pattern string
	// TimeZone is the Nats-Schedule-Time-Zone header (cron only; "" is
	// UTC).
	TimeZone string
	// When is when a one-time schedule (In, At) fires.
	When time.Time
	// Interval is Every's interval.
	Interval time.Duration
	// Command is the command to run, as typed (spacing kept: a query's
	// JSON stays intact).
	Command string
	// Note tells the user something they may not expect ("17:30 has
	// passed today: it runs tomorrow"), or is "".
	Note string
	// Desc describes the schedule in words, as the user wrote it
	// ("every 1m", `cron "0 0 9 * * 1-5" Europe/Berlin`, "at 2026-12-24
	// 17:30 Europe/Berlin").
	Desc string
}

// Parse reads text, a whole scheduling command (its first word one of
// Verbs), at time now.
func Parse(text string, now time.Time) (Spec, error) {
	sc := scanner{s: text}
	verb := strings.ToLower(sc.word())
	switch verb {
	case "in":
		return parseIn(&sc, now)
	case "at":
		return parseAt(&sc, now)
	case "every":
		return parseEvery(&sc)
	case "cron":
		return parseCron(&sc)
	}
	return Spec{}, fmt.Errorf("%q is not a scheduling command: use in, at, every or cron", clip(verb))
}

func parseIn(sc *scanner, now time.Time) (Spec, error) {
	tok := sc.word()
	if tok == "" {
		return Spec{}, usage(UsageIn, "in 10m health greeter")
	}
	d, err := duration(tok, "delay")
	if err != nil {
		return Spec{}, err
	}
	cmd, err := command(sc, UsageIn, "in 10m health greeter")
	if err != nil {
		return Spec{}, err
	}
	when := now.Add(d).UTC().Truncate(time.Second)
	return Spec{Kind: In, Pattern: "@at " + when.Format(time.RFC3339), When: when, Command: cmd, Desc: "in " + tok}, nil
}

func parseEvery(sc *scanner) (Spec, error) {
	tok := sc.word()
	if tok == "" {
		return Spec{}, usage(UsageEvery, "every 1h health greeter")
	}
	d, err := duration(tok, "interval")
	if err != nil {
		return Spec{}, err
	}
	cmd, err := command(sc, UsageEvery, "every 1h health greeter")
	if err != nil {
		return Spec{}, err
	}
	return Spec{Kind: Every, Pattern: "@every " + d.String(), Interval: d, Command: cmd, Desc: "every " + tok}, nil
}

// duration reads a delay or interval: a Go duration (90s, 10m, 1h30m),
// from MinDuration to MaxDuration.
func duration(tok, what string) (time.Duration, error) {
	d, err := time.ParseDuration(tok)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: write it like 90s, 10m or 1h30m", clip(tok))
	}
	if d < MinDuration {
		return 0, fmt.Errorf("the %s %s is too short: the shortest is %s", what, clip(tok), MinDuration)
	}
	if d > MaxDuration {
		return 0, fmt.Errorf("the %s %s is too long: the longest is %s (366 days)", what, clip(tok), MaxDuration)
	}
	return d, nil
}

const atExample = "at 17:30 Europe/Berlin list services"

func parseAt(sc *scanner, now time.Time) (Spec, error) {
	first := sc.word()
	if first == "" {
		return Spec{}, usage(UsageAt, atExample)
	}
	var (
		date            string // YYYY-MM-DD, or "" for the next time of day
		clock, typedVal = first, first
	)
	if d, c, ok := strings.Cut(first, "T"); ok && isDate(d) {
		date, clock = d, c
	} else if isDate(first) {
		date = first
		clock = sc.word()
		typedVal = first + " " + clock
		if clock == "" {
			return Spec{}, usage(UsageAt, "at 2026-12-24 17:30 Europe/Berlin list services")
		}
	}
	h, m, s, ok := timeOfDay(clock)
	if !ok {
		return Spec{}, fmt.Errorf("%q is not a time: write HH:MM (17:30), HH:MM:SS or a date and a time (2026-12-24 17:30), then an optional zone (Europe/Berlin; UTC if none), then the command", clip(typedVal))
	}
	loc, zoneName, err := zone(sc)
	if err != nil {
		return Spec{}, err
	}
	cmd, err := command(sc, UsageAt, atExample)
	if err != nil {
		return Spec{}, err
	}
	nowIn := now.In(loc)
	var when time.Time
	note := ""
	if date == "" {
		when = time.Date(nowIn.Year(), nowIn.Month(), nowIn.Day(), h, m, s, 0, loc)
		if !when.After(now) {
			when = time.Date(nowIn.Year(), nowIn.Month(), nowIn.Day()+1, h, m, s, 0, loc)
			note = fmt.Sprintf("%s %s has passed today: it runs tomorrow", clock, zoneName)
		}
	} else {
		day, _ := time.ParseInLocation("2006-01-02", date, loc)
		when = time.Date(day.Year(), day.Month(), day.Day(), h, m, s, 0, loc)
		if !when.After(now) {
			return Spec{}, fmt.Errorf("%s %s %s has passed: a schedule must be in the future (the time is now %s)", date, clock, zoneName, nowIn.Format("2006-01-02 15:04:05 MST"))
		}
		if when.Sub(now) > MaxDuration {
			return Spec{}, fmt.Errorf("%s %s %s is more than 366 days away", date, clock, zoneName)
		}
	}
	if dst := wallClockNote(when, h, m, s, clock, zoneName); dst != "" {
		if note != "" {
			note += "; "
		}
		note += dst
	}
	return Spec{
		Kind: At, Pattern: "@at " + when.UTC().Format(time.RFC3339), When: when.UTC(), Command: cmd, Note: note,
		Desc: "at " + typedVal + " " + zoneName,
	}, nil
}

// wallClockNote says when the time of day h:m:s the user asked for is
// not once on when's day in its zone: it does not exist (the clocks go
// forward; Go's time.Date moves it past the gap) or happens twice (the
// clocks go back; time.Date takes one of the two). Else it is "".
func wallClockNote(when time.Time, h, m, s int, clock, zoneName string) string {
	day := when.Format("Mon 2 Jan")
	if when.Hour() != h || when.Minute() != m || when.Second() != s {
		return fmt.Sprintf("%s does not exist in %s on %s (the clocks go forward): it runs at %s", clock, zoneName, day, when.Format("15:04:05 MST"))
	}
	for _, d := range []time.Duration{-time.Hour, time.Hour} {
		other := when.Add(d).In(when.Location())
		if other.Hour() == h && other.Minute() == m && other.Second() == s && other.Day() == when.Day() {
			which := "first"
			if d < 0 {
				which = "second"
			}
			return fmt.Sprintf("%s happens twice in %s on %s (the clocks go back): it runs at the %s, %s", clock, zoneName, day, which, when.Format("15:04:05 MST"))
		}
	}
	return ""
}

// isDate reports whether s is YYYY-MM-DD.
func isDate(s string) bool {
	_, err := time.Parse("2006-01-02", s)
	return err == nil && len(s) == 10
}

// timeOfDay reads H:MM, HH:MM or HH:MM:SS.
func timeOfDay(s string) (h, m, sec int, ok bool) {
	for _, layout := range []string{"15:04:05", "15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Hour(), t.Minute(), t.Second(), true
		}
	}
	return 0, 0, 0, false
}

// zone reads an optional time zone: a word with a slash (Europe/Berlin)
// must be a zone; an upper-case word that names one (UTC, CET) is one;
// anything else is the command, and the zone is UTC.
func zone(sc *scanner) (*time.Location, string, error) {
	save := sc.i
	tok := sc.word()
	switch {
	case tok == "":
		sc.i = save
		return time.UTC, "UTC", nil
	case strings.Contains(tok, "/"):
		loc, err := loadZone(tok)
		if err != nil {
			return nil, "", fmt.Errorf("%q is not a time zone: use an IANA name such as Europe/Berlin, America/New_York or UTC", clip(tok))
		}
		return loc, tok, nil
	case isUpper(tok):
		if loc, err := loadZone(tok); err == nil {
			return loc, tok, nil
		}
	}
	sc.i = save
	return time.UTC, "UTC", nil
}

// loadZone loads an IANA zone; "Local" is not one (it is the router's).
func loadZone(name string) (*time.Location, error) {
	if name == "Local" || name == "" {
		return nil, errors.New("schedule: not a zone")
	}
	return time.LoadLocation(name)
}

func isUpper(s string) bool {
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return len(s) >= 2
}

const cronExample = `cron "0 0 9 * * 1-5" Europe/Berlin health greeter`

// predefined are the cron shorthands nats-server knows.
var predefined = []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}

func parseCron(sc *scanner) (Spec, error) {
	expr, quoted, ok := sc.quoted()
	if !ok {
		return Spec{}, fmt.Errorf("the cron expression has no closing quote: %s", cronHelp)
	}
	if !quoted {
		expr = sc.word()
		if !isPredefined(expr) {
			if expr == "" {
				return Spec{}, usage(UsageCron, cronExample)
			}
			return Spec{}, fmt.Errorf("put the cron expression in double quotes: %s", cronHelp)
		}
	}
	expr = strings.Join(strings.Fields(expr), " ")
	if err := checkCron(expr); err != nil {
		return Spec{}, err
	}
	loc, zoneName, err := zone(sc)
	if err != nil {
		return Spec{}, err
	}
	cmd, err := command(sc, UsageCron, cronExample)
	if err != nil {
		return Spec{}, err
	}
	pattern := expr
	if isPredefined(expr) {
		pattern = strings.ToLower(expr)
	}
	spec := Spec{Kind: Cron, Pattern: pattern, Command: cmd, Desc: fmt.Sprintf("cron %q %s", expr, zoneName)}
	if loc != time.UTC {
		spec.TimeZone = zoneName
	}
	return spec, nil
}

const cronHelp = `six fields, seconds first ("0 30 9 * * 1-5" is 9:30 on weekdays), or @hourly, @daily, @weekly, @monthly, @yearly; e.g. ` + cronExample

func isPredefined(s string) bool {
	for _, p := range predefined {
		if strings.EqualFold(s, p) {
			return true
		}
	}
	return false
}

// checkCron refuses what is plainly not a cron expression; nats-server
// checks the rest when the schedule is stored.
func checkCron(expr string) error {
	if isPredefined(expr) {
		return nil
	}
	fields := strings.Fields(expr)
	if len(fields) != 6 {
		return fmt.Errorf("%q is not a cron expression: it has %d fields, not %s", clip(expr), len(fields), cronHelp)
	}
	for _, f := range fields {
		for _, r := range f {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("*,-/?", r)) {
				return fmt.Errorf("%q is not a cron expression: %q has a %q; %s", clip(expr), clip(f), r, cronHelp)
			}
		}
	}
	return nil
}

// command returns the rest of the text: the command to schedule.
func command(sc *scanner, usageLine, example string) (string, error) {
	cmd := strings.TrimSpace(sc.s[sc.i:])
	if cmd == "" {
		return "", fmt.Errorf("which command should run? %s, e.g. %s", usageLine, example)
	}
	if w := firstWord(cmd); IsVerb(w) || strings.EqualFold(w, "schedules") || strings.EqualFold(w, "unschedule") {
		return "", fmt.Errorf("a schedule cannot set or change schedules: schedule the command itself (%s)", example)
	}
	return cmd, nil
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

func usage(line, example string) error {
	return fmt.Errorf("usage: %s, e.g. %s", line, example)
}

// clip shortens what a user typed for an error message.
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// scanner reads white-space separated words from s.
type scanner struct {
	s string
	i int
}

func (sc *scanner) skipSpace() {
	for sc.i < len(sc.s) {
		r, n := utf8.DecodeRuneInString(sc.s[sc.i:])
		if !unicode.IsSpace(r) {
			return
		}
		sc.i += n
	}
}

// word returns the next word, or "" at the end.
func (sc *scanner) word() string {
	sc.skipSpace()
	start := sc.i
	for sc.i < len(sc.s) {
		r, n := utf8.DecodeRuneInString(sc.s[sc.i:])
		if unicode.IsSpace(r) {
			break
		}
		sc.i += n
	}
	return sc.s[start:sc.i]
}

// quoted reads a double-quoted string ("…", or “…” as chat clients
// autocorrect it): its contents and true, or false as quoted when the next
// word does not start with a quote (nothing read). ok is false for an
// opening quote that is never closed.
func (sc *scanner) quoted() (s string, quoted, ok bool) {
	sc.skipSpace()
	rest := sc.s[sc.i:]
	var closeQ string
	switch {
	case strings.HasPrefix(rest, `"`):
		closeQ = `"`
		rest = rest[1:]
	case strings.HasPrefix(rest, "“"):
		closeQ = "”"
		rest = rest[len("“"):]
	default:
		return "", false, true
	}
	end := strings.Index(rest, closeQ)
	if end < 0 {
		return "", true, false
	}
	sc.i = len(sc.s) - len(rest) + end + len(closeQ)
	return rest[:end], true, true
}
