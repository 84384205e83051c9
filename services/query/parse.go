package query

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/botmesh/botmesh/services/registry-cmd/jsonarg"
)

// Usage is the query command's usage line.
const Usage = "query [service] [method] [json]"

// Call is a parsed `query SERVICE METHOD [JSON]`.
type Call struct {
	Service string
	// Method is Service.Method as go-micro names endpoints, e.g.
	// Greeter.Hello.
	Method string
	// Body is the JSON request as typed (spacing kept), "{}" if none.
	Body []byte
}

// UsageError is a query message that is not SERVICE METHOD [JSON].
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ParseCall reads the text of a query message ("query greeter Greeter.Hello
// {"name":"Ada"}"): the first word is the command, then SERVICE, METHOD and
// the rest is the JSON request, which may also start right after METHOD
// (Greeter.Hello{...}) and may be wrapped in chat code formatting. The JSON
// is checked: a *jsonarg.SyntaxError says where it is wrong.
func ParseCall(text string) (Call, error) {
	rest := jsonarg.After(text, 1) // drop "query"
	service, rest := nextWord(rest)
	if service == "" {
		return Call{}, &UsageError{Msg: "which service and method? Usage: " + Usage + `, e.g. query greeter Greeter.Hello {"name":"Ada"}`}
	}
	if strings.ContainsAny(service, "{[") {
		return Call{}, &UsageError{Msg: fmt.Sprintf("the JSON comes after [service] and [method]. Usage: %s", Usage)}
	}
	// METHOD ends at white space or where the JSON starts.
	rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
	end := strings.IndexFunc(rest, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune("{[`", r) })
	if end < 0 {
		end = len(rest)
	}
	method := rest[:end]
	rest = rest[end:]
	if method == "" {
		return Call{}, &UsageError{Msg: fmt.Sprintf("which method of %s? Usage: %s, e.g. query %s Greeter.Hello {}", clip(service, 80), Usage, clip(service, 80))}
	}
	if err := checkMethod(method); err != nil {
		return Call{}, err
	}
	body := strings.TrimSpace(jsonarg.Unwrap(strings.TrimSpace(rest)))
	if body == "" {
		body = "{}"
	}
	if err := jsonarg.Check([]byte(body)); err != nil {
		return Call{}, err
	}
	return Call{Service: service, Method: method, Body: []byte(body)}, nil
}

// checkMethod wants Service.Method: two non-empty parts.
func checkMethod(m string) error {
	svc, fn, ok := strings.Cut(m, ".")
	if !ok || svc == "" || fn == "" || strings.Contains(fn, ".") {
		return &UsageError{Msg: fmt.Sprintf("method %q should be Service.Method, e.g. Greeter.Hello", clip(m, 80))}
	}
	return nil
}

// nextWord splits s into its first word and the rest.
func nextWord(s string) (string, string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// errUsage reports whether err is the user's input (not a failure).
func errUsage(err error) bool {
	var u *UsageError
	var s *jsonarg.SyntaxError
	return errors.As(err, &u) || errors.As(err, &s)
}

// clip shortens s to n bytes at a character boundary, with an ellipsis.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n] + "…"
}
