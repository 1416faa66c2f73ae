// ads-swarm runs many ADS clients that talk to a control plane as Envoy does, for
// bench/xds_storm.py. Each client is one node with its own TCP connection (its own
// grpc.ClientConn), and behaves like Envoy's gRPC mux:
//
//   - SotW: it subscribes to CDS first; when the clusters arrive it subscribes to SDS and LDS,
//     and when the listeners arrive, to RDS (Envoy asks for what the previous type referenced).
//     Every response is ACKed with its version_info, nonce and the same resource names.
//   - Delta: the same order; the ACK carries only the type and nonce; it keeps name -> version
//     of what it holds.
//   - The node is sent on the first request of a stream only (the bootstrap sets
//     set_node_on_first_message_only).
//   - Its connection advertises Envoy's HTTP/2 flow-control windows (256 MiB, fixed).
//   - With -sources, each node connects from an address of its own (loopback, 127.0.0.0/8),
//     as each Envoy of a fleet comes from its own pod IP. From one address, the kernel's
//     search for a free ephemeral port among 20,000 connections to one server port (the
//     storm's dropped ones in TIME_WAIT and the new ones) was a tenth of the swarm's CPU.
//   - When a stream ends, it reconnects on a new connection after Envoy's backoff for xDS
//     streams (source/common/config/grpc_stream.h: base 500 ms, at most 30 s, full jitter:
//     a random wait below the current interval, which doubles per failure), and tells the
//     server what it holds: the last accepted version_info per type (SotW) or
//     initial_resource_versions (delta). A server that honours them sends nothing.
//
// Control on stdin, one word per line: "report" prints one JSON line of counters (cumulative),
// "drop" closes every connection (as a network partition would), "quit" exits.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"atlastest/thanoswire"
)

const (
	cds = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	lds = "type.googleapis.com/envoy.config.listener.v3.Listener"
	rds = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	sds = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

	sotwMethod  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	deltaMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

	envoyWindow = 256 << 20

	backoffBase = 500 * time.Millisecond
	backoffMax  = 30 * time.Second
)

var counters struct {
	attempts, streams, failures, responses, resources, removed, bytes int64
}

type counts struct {
	Attempts  int64            `json:"attempts"`
	Streams   int64            `json:"streams"`
	Failures  int64            `json:"failures"`
	Responses int64            `json:"responses"`
	Resources int64            `json:"resources"`
	Removed   int64            `json:"removed"`
	Bytes     int64            `json:"bytes"`
	Live      int64            `json:"live"`
	Reasons   map[string]int64 `json:"reasons"`
}

var live int64

// why streams failed, by gRPC status code (or "dial", "parse")
var reasons sync.Map

func fail(reason string, err error) {
	atomic.AddInt64(&counters.failures, 1)
	v, _ := reasons.LoadOrStore(reason, new(int64))
	if atomic.AddInt64(v.(*int64), 1) <= 3 && err != nil {
		fmt.Fprintf(os.Stderr, "ads-swarm: stream failed: %v\n", err) // the first few of each kind
	}
}

// names each type subscribes to; empty means wildcard.
type subscription map[string][]string

type client struct {
	node    string
	delta   bool
	server  string
	source  net.IP // the address it connects from; nil: the kernel's choice
	names   subscription
	order   []string                     // types in the order first subscribed
	version map[string]string            // SotW: last accepted version_info per type
	held    map[string]map[string]string // delta: name -> version per type
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, inner []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

func nodeField(b []byte, num protowire.Number, id string) []byte {
	return appendMessage(b, num, appendString(nil, 1, id))
}

// DiscoveryRequest: version_info 1, node 2, resource_names 3, type_url 4, response_nonce 5.
func (c *client) sotwRequest(typeURL, nonce string, first bool) []byte {
	var b []byte
	if v := c.version[typeURL]; v != "" {
		b = appendString(b, 1, v)
	}
	if first {
		b = nodeField(b, 2, c.node)
	}
	for _, n := range c.names[typeURL] {
		b = appendString(b, 3, n)
	}
	b = appendString(b, 4, typeURL)
	if nonce != "" {
		b = appendString(b, 5, nonce)
	}
	return b
}

// DeltaDiscoveryRequest: node 1, type_url 2, resource_names_subscribe 3,
// initial_resource_versions 5 (map<string,string>), response_nonce 6.
func (c *client) deltaRequest(typeURL, nonce string, first, initial bool) []byte {
	var b []byte
	if first {
		b = nodeField(b, 1, c.node)
	}
	b = appendString(b, 2, typeURL)
	if initial {
		for _, n := range c.names[typeURL] {
			b = appendString(b, 3, n)
		}
		for name, version := range c.held[typeURL] {
			entry := appendString(appendString(nil, 1, name), 2, version)
			b = appendMessage(b, 5, entry)
		}
	}
	if nonce != "" {
		b = appendString(b, 6, nonce)
	}
	return b
}

type response struct {
	version, typeURL, nonce string
	resources               [][2]string // delta: (name, version)
	count                   int
	removed                 []string
}

// DiscoveryResponse: version_info 1, resources 2, type_url 4, nonce 5.
// DeltaDiscoveryResponse: system_version_info 1, resources 2 (Resource: version 1, name 3),
// type_url 4, nonce 5, removed_resources 6.
func parseResponse(b []byte, delta bool) (response, error) {
	var r response
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return r, protowire.ParseError(m)
			}
			b = b[m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return r, protowire.ParseError(m)
		}
		b = b[m:]
		switch num {
		case 1:
			r.version = string(v)
		case 2:
			r.count++
			if delta {
				r.resources = append(r.resources, deltaResource(v))
			}
		case 4:
			r.typeURL = string(v)
		case 5:
			r.nonce = string(v)
		case 6:
			if delta {
				r.removed = append(r.removed, string(v))
			}
		}
	}
	return r, nil
}

func deltaResource(b []byte) [2]string {
	var out [2]string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return out
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return out
		}
		if typ == protowire.BytesType && (num == 1 || num == 3) {
			v, _ := protowire.ConsumeBytes(b)
			if num == 3 {
				out[0] = string(v)
			} else {
				out[1] = string(v)
			}
		}
		b = b[m:]
	}
	return out
}

// next is what Envoy subscribes to once a type's first response has arrived.
var next = map[string][]string{cds: {sds, lds}, lds: {rds}}

func (c *client) subscribed(typeURL string) bool {
	for _, t := range c.order {
		if t == typeURL {
			return true
		}
	}
	return false
}

// stream runs one ADS stream until it ends; returns whether it was established.
func (c *client) stream(ctx context.Context, drop <-chan struct{}) bool {
	atomic.AddInt64(&counters.attempts, 1)
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	dialer := net.Dialer{}
	if c.source != nil {
		dialer.LocalAddr = &net.TCPAddr{IP: c.source}
	}
	// One connection per stream attempt, as Envoy's gRPC client: grpc-go would open another
	// as soon as the server sends GOAWAY (a replica stopping gracefully), which Envoy does
	// not do until its stream has ended; a further dial waits for this attempt to end.
	var dials int32
	conn, err := grpc.DialContext(ctx, c.server,
		grpc.WithInsecure(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			if atomic.AddInt32(&dials, 1) > 1 {
				select { // until this attempt ends, or grpc-go gives the dial up
				case <-streamCtx.Done():
				case <-ctx.Done():
				}
				return nil, context.Canceled
			}
			return dialer.DialContext(ctx, "tcp", addr)
		}),
		grpc.WithReadBufferSize(16*1024),
		grpc.WithWriteBufferSize(16*1024),
		// Envoy's HTTP/2 windows for its ADS connection (Http2ProtocolOptions defaults,
		// which Atlas's bootstrap leaves as they are): 256 MiB per stream and per
		// connection, fixed. grpc-go's own (64 KiB, grown by BDP probes) made the swarm
		// fetch the observability node's 6-15 MB responses in many round trips.
		grpc.WithInitialWindowSize(envoyWindow),
		grpc.WithInitialConnWindowSize(envoyWindow),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
	)
	if err != nil {
		fail("dial", err)
		return false
	}
	defer conn.Close()
	go func() {
		select {
		case <-drop:
			cancel()
		case <-streamCtx.Done():
		}
	}()
	method := sotwMethod
	if c.delta {
		method = deltaMethod
	}
	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
	s, err := conn.NewStream(streamCtx, desc, method, grpc.ForceCodec(thanoswire.Raw{}))
	if err != nil {
		fail(status.Code(err).String(), err)
		return false
	}
	first := true
	send := func(typeURL, nonce string, initial bool) error {
		var msg []byte
		if c.delta {
			msg = c.deltaRequest(typeURL, nonce, first, initial)
		} else {
			msg = c.sotwRequest(typeURL, nonce, first)
		}
		first = false
		return s.SendMsg(msg)
	}
	if len(c.order) == 0 {
		c.order = []string{cds}
	}
	for _, t := range c.order {
		if err := send(t, "", true); err != nil {
			fail(status.Code(err).String(), err)
			return false
		}
	}
	atomic.AddInt64(&counters.streams, 1)
	atomic.AddInt64(&live, 1)
	defer atomic.AddInt64(&live, -1)
	for {
		var raw []byte
		if err := s.RecvMsg(&raw); err != nil {
			if err != io.EOF && streamCtx.Err() == nil {
				fail(status.Code(err).String(), err)
			}
			return true
		}
		r, err := parseResponse(raw, c.delta)
		if err != nil {
			fail("parse", err)
			return true
		}
		atomic.AddInt64(&counters.responses, 1)
		atomic.AddInt64(&counters.resources, int64(r.count))
		atomic.AddInt64(&counters.removed, int64(len(r.removed)))
		atomic.AddInt64(&counters.bytes, int64(len(raw)))
		if c.delta {
			held := c.held[r.typeURL]
			if held == nil {
				held = map[string]string{}
				c.held[r.typeURL] = held
			}
			for _, nv := range r.resources {
				held[nv[0]] = nv[1]
			}
			for _, name := range r.removed {
				delete(held, name)
			}
		} else {
			c.version[r.typeURL] = r.version
		}
		if err := send(r.typeURL, r.nonce, false); err != nil {
			return true
		}
		for _, t := range next[r.typeURL] {
			if !c.subscribed(t) {
				c.order = append(c.order, t)
				if err := send(t, "", true); err != nil {
					return true
				}
			}
		}
	}
}

func (c *client) run(ctx context.Context, rng *rand.Rand, drops func() <-chan struct{}) {
	interval := backoffBase
	for ctx.Err() == nil {
		if c.stream(ctx, drops()) {
			interval = backoffBase
		}
		wait := time.Duration(rng.Int63n(int64(interval)))
		if interval < backoffMax/2 {
			interval *= 2
		} else {
			interval = backoffMax
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

func reasonCounts() map[string]int64 {
	out := map[string]int64{}
	reasons.Range(func(k, v interface{}) bool {
		out[k.(string)] = atomic.LoadInt64(v.(*int64))
		return true
	})
	return out
}

func main() {
	server := flag.String("server", "127.0.0.1:18000", "ADS server HOST:PORT")
	nodesFlag := flag.String("nodes", "", "node ids, comma separated")
	delta := flag.Bool("delta", false, "incremental xDS instead of state of the world")
	routesFlag := flag.String("routes", "thanos,prometheus,alertmanager,alert-relay", "RDS names of every node but -obs")
	obs := flag.String("obs", "atlas", "the observability node's id")
	obsRoutes := flag.String("obs-routes", "thanos,prometheus-ui,alertmanager-ui,alert-intake", "RDS names of -obs")
	secrets := flag.String("secrets", "identity,trust-bundle", "SDS names")
	seed := flag.Int64("seed", 1, "backoff jitter seed")
	sources := flag.String("sources", "", "IPv4 base: the i-th node connects from base + i + 1")
	flag.Parse()
	var base uint32
	if *sources != "" {
		ip := net.ParseIP(*sources).To4()
		if ip == nil {
			fmt.Fprintln(os.Stderr, "ads-swarm: -sources is not an IPv4 address:", *sources)
			os.Exit(2)
		}
		base = uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	dropped := make(chan struct{})
	drops := func() <-chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		return dropped
	}
	for i, node := range strings.Split(*nodesFlag, ",") {
		if node == "" {
			continue
		}
		routes := *routesFlag
		if node == *obs {
			routes = *obsRoutes
		}
		c := &client{
			node:    node,
			delta:   *delta,
			server:  *server,
			names:   subscription{rds: strings.Split(routes, ","), sds: strings.Split(*secrets, ",")},
			version: map[string]string{},
			held:    map[string]map[string]string{},
		}
		if base != 0 {
			a := base + uint32(i) + 1
			c.source = net.IPv4(byte(a>>24), byte(a>>16), byte(a>>8), byte(a))
		}
		go c.run(ctx, rand.New(rand.NewSource(*seed+int64(i))), drops)
	}
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "report":
			_ = out.Encode(counts{
				Attempts:  atomic.LoadInt64(&counters.attempts),
				Streams:   atomic.LoadInt64(&counters.streams),
				Failures:  atomic.LoadInt64(&counters.failures),
				Responses: atomic.LoadInt64(&counters.responses),
				Resources: atomic.LoadInt64(&counters.resources),
				Removed:   atomic.LoadInt64(&counters.removed),
				Bytes:     atomic.LoadInt64(&counters.bytes),
				Live:      atomic.LoadInt64(&live),
				Reasons:   reasonCounts(),
			})
		case "drop":
			mu.Lock()
			close(dropped)
			dropped = make(chan struct{})
			mu.Unlock()
		case "quit":
			return
		default:
			fmt.Fprintln(os.Stderr, "ads-swarm: unknown command", in.Text())
		}
	}
}
