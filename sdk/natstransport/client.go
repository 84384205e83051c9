package natstransport

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/codec"
	raw "go-micro.dev/v4/codec/bytes"
	"go-micro.dev/v4/codec/jsonrpc"
	"go-micro.dev/v4/codec/protorpc"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/transport"
)

// Client is a go-micro client.Client whose Call sends each request as one
// NATS message and waits for the response on the transport's reply
// subscription, with the wire protocol of go-micro's rpc client on the NATS
// transport: a server on this transport or on the plugin answers it as it
// answers go-micro's client. go-micro's rpc client runs every attempt, and
// every call inside it, in goroutines of their own, with a timer each, and
// copies headers through a pooled connection; Call does none of that, and
// keeps the rest of the contract: the selector, call wrappers, retries
// with backoff, the request and connection timeouts, metadata from the
// context, and go-micro's errors (408 on timeouts, "go.micro.client" and
// "go.micro.client.transport" errors, the server's own errors as it sent
// them). Stream and Publish are go-micro's rpc client's, on the same
// options.
type Client struct {
	t     *Transport
	rpc   client.Client // Stream, Publish, NewRequest, NewMessage
	mu    sync.RWMutex
	opts  client.Options
	seq   atomic.Uint64
	calls *calls
}

var _ client.Client = (*Client)(nil)

// NewClient returns a client on t. opts are go-micro's client options; its
// Transport option is ignored (it is t). The options' client wrappers wrap
// the returned client, as go-micro's NewClient does.
func NewClient(t *Transport, opts ...client.Option) client.Client {
	opts = append(opts, client.Transport(t))
	c := &Client{t: t, rpc: client.NewClient(opts...), opts: client.NewOptions(opts...), calls: t.callTable()}
	var out client.Client = c
	for i := len(c.opts.Wrappers); i > 0; i-- {
		out = c.opts.Wrappers[i-1](out)
	}
	return out
}

// Init implements client.Client.
func (c *Client) Init(opts ...client.Option) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range opts {
		o(&c.opts)
	}
	return c.rpc.Init(opts...)
}

// Options implements client.Client.
func (c *Client) Options() client.Options {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.opts
}

// NewMessage implements client.Client.
func (c *Client) NewMessage(topic string, msg interface{}, opts ...client.MessageOption) client.Message {
	return c.rpc.NewMessage(topic, msg, opts...)
}

// NewRequest implements client.Client.
func (c *Client) NewRequest(service, endpoint string, req interface{}, opts ...client.RequestOption) client.Request {
	return c.rpc.NewRequest(service, endpoint, req, opts...)
}

// Stream implements client.Client with go-micro's rpc client.
func (c *Client) Stream(ctx context.Context, req client.Request, opts ...client.CallOption) (client.Stream, error) {
	return c.rpc.Stream(ctx, req, opts...)
}

// Publish implements client.Client with go-micro's rpc client.
func (c *Client) Publish(ctx context.Context, msg client.Message, opts ...client.PublishOption) error {
	return c.rpc.Publish(ctx, msg, opts...)
}

// String implements client.Client: the protocol, as go-micro's client
// names it.
func (c *Client) String() string { return "mucp" }

// Call implements client.Client: it picks a node with the selector (or the
// Address call option), calls it through the call wrappers, and tries again
// as the Retry option decides, until the request timeout.
func (c *Client) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	o := c.Options()
	callOpts := o.CallOptions
	for _, opt := range opts {
		opt(&callOpts)
	}
	next, err := c.next(o, req, callOpts)
	if err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callOpts.RequestTimeout)
		defer cancel()
	} else {
		callOpts.RequestTimeout = time.Until(d)
	}
	if err := ctx.Err(); err != nil {
		return merrors.Timeout("go.micro.client", "%v", err)
	}
	rcall := c.call
	for i := len(callOpts.CallWrappers); i > 0; i-- {
		rcall = callOpts.CallWrappers[i-1](rcall)
	}
	var gerr error
	for i := 0; i <= callOpts.Retries; i++ {
		if d, err := callOpts.Backoff(ctx, req, i); err != nil {
			return merrors.InternalServerError("go.micro.client", "backoff error: %v", err.Error())
		} else if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return merrors.Timeout("go.micro.client", "call timeout: %v", ctx.Err())
			}
		}
		node, err := next()
		if err != nil {
			if errors.Is(err, selector.ErrNotFound) {
				return merrors.InternalServerError("go.micro.client", "service %s: %s", req.Service(), err.Error())
			}
			return merrors.InternalServerError("go.micro.client", "error getting next %s node: %s", req.Service(), err.Error())
		}
		err = rcall(ctx, node, req, rsp, callOpts)
		o.Selector.Mark(req.Service(), node, err)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return merrors.Timeout("go.micro.client", "call timeout: %v", ctx.Err())
		}
		retry, rerr := callOpts.Retry(ctx, req, i, err)
		if rerr != nil {
			return rerr
		}
		if !retry {
			return err
		}
		gerr = err
	}
	return gerr
}

// next returns the nodes to try, as go-micro's client does (without its
// MICRO_PROXY environment variable).
func (c *Client) next(o client.Options, req client.Request, callOpts client.CallOptions) (selector.Next, error) {
	if len(callOpts.Address) > 0 {
		nodes := make([]*registry.Node, len(callOpts.Address))
		for i, addr := range callOpts.Address {
			nodes[i] = &registry.Node{Address: addr, Metadata: map[string]string{"protocol": "mucp"}}
		}
		var n atomic.Uint64
		return func() (*registry.Node, error) { return nodes[int(n.Add(1)-1)%len(nodes)], nil }, nil
	}
	next, err := o.Selector.Select(req.Service(), callOpts.SelectOptions...)
	if err != nil {
		if errors.Is(err, selector.ErrNotFound) {
			return nil, merrors.InternalServerError("go.micro.client", "service %s: %s", req.Service(), err.Error())
		}
		return nil, merrors.InternalServerError("go.micro.client", "error selecting %s node: %s", req.Service(), err.Error())
	}
	return next, nil
}

// serverError is an error the server sent (the Micro-Error header), as
// go-micro's client returns it: its text is the server's.
type serverError string

func (e serverError) Error() string { return string(e) }

// legacy are the codecs of nodes that do not say their protocol, as
// go-micro's client picks them.
var legacy = map[string]struct {
	contentType string
	codec       codec.NewCodec
}{
	"application/json":         {"application/json-rpc", jsonrpc.NewCodec},
	"application/json-rpc":     {"application/json-rpc", jsonrpc.NewCodec},
	"application/protobuf":     {"application/proto-rpc", protorpc.NewCodec},
	"application/proto-rpc":    {"application/proto-rpc", protorpc.NewCodec},
	"application/octet-stream": {"application/octet-stream", protorpc.NewCodec},
}

// buffers is a codec's io.ReadWriteCloser: it writes the request body and
// reads the response body.
type buffers struct {
	w bytes.Buffer
	r bytes.Reader
}

func (b *buffers) Read(p []byte) (int, error)  { return b.r.Read(p) }
func (b *buffers) Write(p []byte) (int, error) { return b.w.Write(p) }
func (b *buffers) Close() error                { return nil }

// call makes one attempt on node: one NATS message and its response.
func (c *Client) call(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
	header := make(map[string]string, 12)
	if md, ok := metadata.FromContext(ctx); ok {
		for k, v := range md {
			if k != "Micro-Topic" {
				header[k] = v
			}
		}
	}
	timeout := opts.ConnectionTimeout
	if timeout == 0 {
		timeout = client.DefaultConnectionTimeout
	}
	contentType := req.ContentType()
	header["Timeout"] = strconv.FormatInt(int64(timeout), 10)
	header["Content-Type"] = contentType
	header["Accept"] = contentType
	var newCodec codec.NewCodec
	if node.Metadata["protocol"] == "" {
		if l, ok := legacy[contentType]; ok {
			header["Content-Type"] = l.contentType
			newCodec = l.codec
		}
	}
	if newCodec == nil {
		o := c.Options()
		if nc, ok := o.Codecs[contentType]; ok {
			newCodec = nc
		} else if nc, ok := client.DefaultCodecs[contentType]; ok {
			newCodec = nc
		} else {
			return merrors.InternalServerError("go.micro.client", "unsupported Content-Type: %s", contentType)
		}
	}

	id := strconv.FormatUint(c.seq.Add(1)-1, 10)
	msg := codec.Message{Id: id, Target: req.Service(), Method: req.Method(), Endpoint: req.Endpoint(), Type: codec.Request, Header: header}
	setHeader(header, "Micro-Id", msg.Id)
	setHeader(header, "Micro-Service", msg.Target)
	setHeader(header, "Micro-Method", msg.Method)
	setHeader(header, "Micro-Endpoint", msg.Endpoint)
	bufs := &buffers{}
	cd := newCodec(bufs)
	tm := transport.Message{Header: header}
	if f, ok := req.Body().(*raw.Frame); ok {
		tm.Body = f.Data
	} else if req.Body() != nil {
		if err := cd.Write(&msg, req.Body()); err != nil {
			return merrors.InternalServerError("go.micro.client.codec", "%s", err.Error())
		}
		tm.Body = bufs.w.Bytes()
	}

	w, err := c.calls.start(c.t)
	if err != nil {
		return merrors.InternalServerError("go.micro.client", "connection error: %v", err)
	}
	defer c.calls.end(w)
	if err := publish(c.t.nc, node.Address, w.reply, &tm); err != nil {
		return merrors.InternalServerError("go.micro.client.transport", "%s", err.Error())
	}

	// The attempt's own timeout, unless the context ends first anyway.
	var expired <-chan time.Time
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > timeout {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	// A node that answers resent requests once gets the request again
	// when NATS reconnects while the call waits, and every resendEvery
	// once it has waited resendAfter: a NATS server that died (this
	// process's, the service's, or one on the way) may have dropped the
	// request or its response.
	var (
		again     <-chan struct{}
		slow      *time.Timer
		slowC     <-chan time.Time
		in        incoming
		resending bool
	)
	if node.Metadata[ReplayMetadata] == "1" {
		again = c.t.reconnected()
		slow = time.NewTimer(resendAfter)
		defer slow.Stop()
		slowC = slow.C
	}
	resend := func() {
		resending = true
		h := maps.Clone(tm.Header)
		h[resendHeader] = "1"
		_ = publish(c.t.nc, node.Address, w.reply, &transport.Message{Header: h, Body: tm.Body})
		slow.Reset(resendEvery)
	}
wait:
	for {
		select {
		case in = <-w.ch:
			if resending && errors.Is(in.err, nats.ErrNoResponders) {
				continue // the server has not subscribed again yet
			}
			break wait
		case <-again:
			again = c.t.reconnected()
			resend()
		case <-slowC:
			resend()
		case <-ctx.Done():
			return merrors.Timeout("go.micro.client", "%v", ctx.Err())
		case <-expired:
			return merrors.Timeout("go.micro.client", "%v", ctx.Err())
		}
	}
	if in.err != nil {
		return merrors.InternalServerError("go.micro.client.transport", "%s", in.err.Error())
	}
	var rm transport.Message
	if err := readFrame(in.data, &rm); err != nil {
		return merrors.InternalServerError("go.micro.client.transport", "%s", err.Error())
	}
	bufs.r.Reset(rm.Body)
	resp := codec.Message{Header: rm.Header}
	if err := cd.ReadHeader(&resp, codec.Response); err != nil {
		return merrors.InternalServerError("go.micro.client.codec", "%s", err.Error())
	}
	if resp.Error == "" {
		resp.Error = rm.Header["Micro-Error"]
	}
	if resp.Error != "" {
		if err := cd.ReadBody(nil); err != nil {
			return merrors.InternalServerError("go.micro.client.codec", "%s", err.Error())
		}
		return serverError(resp.Error)
	}
	if f, ok := rsp.(*raw.Frame); ok {
		f.Data = rm.Body
		return nil
	}
	if err := cd.ReadBody(rsp); err != nil {
		return merrors.InternalServerError("go.micro.client.codec", "%s", err.Error())
	}
	return nil
}

func setHeader(h map[string]string, k, v string) {
	if v != "" {
		h[k] = v
	}
}

// calls are the calls awaiting their response, by reply token.
type calls struct {
	mu sync.Mutex
	m  map[string]*waiter
}

// waiter is one call awaiting its response.
type waiter struct {
	token string
	reply string
	ch    chan incoming
}

// callTable returns the transport's table of calls, subscribing to replies
// the first time.
func (t *Transport) callTable() *calls {
	t.cmu.Lock()
	defer t.cmu.Unlock()
	if t.calls == nil {
		t.calls = &calls{m: map[string]*waiter{}}
	}
	return t.calls
}

func (cs *calls) start(t *Transport) (*waiter, error) {
	if err := t.subscribeReplies(); err != nil {
		return nil, err
	}
	if t.nc.IsClosed() {
		return nil, nats.ErrConnectionClosed
	}
	token := "c" + strconv.FormatUint(t.seq.Add(1), 36)
	w := &waiter{token: token, reply: t.prefix + token, ch: make(chan incoming, 4)}
	cs.mu.Lock()
	cs.m[token] = w
	cs.mu.Unlock()
	return w, nil
}

func (cs *calls) end(w *waiter) {
	cs.mu.Lock()
	delete(cs.m, w.token)
	cs.mu.Unlock()
}

// deliver hands a response to its call; it reports false when token is no
// call's. A call can get more than one (a "no responders" to a request it
// sent again, then the response): more than fit are dropped, the call
// having ended.
func (cs *calls) deliver(token string, in incoming) bool {
	cs.mu.Lock()
	w := cs.m[token]
	cs.mu.Unlock()
	if w == nil {
		return false
	}
	select {
	case w.ch <- in:
	default:
	}
	return true
}

// CallNode makes one attempt on node, with no selection, wrapper or retry:
// for a client on another transport that meets a node serving over NATS
// (mesh's per-node transport).
func (c *Client) CallNode(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
	return c.call(ctx, node, req, rsp, opts)
}
