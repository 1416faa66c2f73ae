// thanos-query-watch is thanos-query-probe run for ever: it resolves the SRV names as Thanos
// Query does for --endpoint=dnssrvnoa+<name> (package thanosdns), and calls Info on every
// target it is given, over one long-lived grpc-go connection per target dialled by the SRV
// target's name (":authority" <target>.sidecars.thanos.atlas.:<port>, trailing dot included),
// as Thanos keeps one per endpoint. It prints one JSON line per resolution and per call, with
// the time, for a checker that compares them with what should hold at that moment.
//
// One difference from Thanos, on purpose: grpc-go's reconnect backoff is 50 ms to 500 ms
// (Thanos keeps grpc-go's 1 s to 120 s), so that a target that failed once is tried again
// within the checker's time limits instead of minutes later. Every target is called, also
// those no SRV answer lists (a removed replica), to see what the network answers for them.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/status"

	"atlastest/thanosdns"
	"atlastest/thanoswire"
)

type line struct {
	T       float64           `json:"t"`
	Kind    string            `json:"kind"`
	Name    string            `json:"name,omitempty"`
	Rcode   string            `json:"rcode,omitempty"`
	Targets []string          `json:"targets,omitempty"`
	Target  string            `json:"target,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Code    string            `json:"code,omitempty"`
	Error   string            `json:"error,omitempty"`
	Millis  float64           `json:"ms,omitempty"`
}

type printer struct {
	mu  sync.Mutex
	out *json.Encoder
}

func (p *printer) print(l line) {
	l.T = float64(time.Now().UnixNano()) / 1e9
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.out.Encode(l); err != nil {
		os.Exit(0) // the reader is gone
	}
}

func watchName(p *printer, name, server string, every time.Duration) {
	for {
		answer, err := thanosdns.ResolveSRVNoA(name, server)
		l := line{Kind: "srv", Name: name, Rcode: answer.Rcode}
		if err != nil {
			l.Error = err.Error()
		}
		for _, e := range answer.Endpoints {
			host, _, _ := net.SplitHostPort(e)
			l.Targets = append(l.Targets, strings.SplitN(host, ".", 2)[0])
		}
		p.print(l)
		time.Sleep(every)
	}
}

func watchTarget(p *printer, target, endpoint, server string, every, timeout time.Duration) {
	resolver := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, server)
		},
	}
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{Resolver: resolver}).DialContext(ctx, "tcp", addr)
	}
	conn, err := grpc.Dial(endpoint,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
		grpc.WithInsecure(),
		grpc.WithContextDialer(dialer),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: timeout,
		}),
	)
	if err != nil {
		p.print(line{Kind: "call", Target: target, Code: "Unknown", Error: err.Error()})
		return
	}
	raw := grpc.ForceCodec(thanoswire.Raw{})
	for {
		started := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		var reply []byte
		err := conn.Invoke(ctx, "/thanos.info.Info/Info", []byte{}, &reply, raw)
		cancel()
		l := line{Kind: "call", Target: target, Code: "OK"}
		l.Millis = float64(time.Since(started).Microseconds()) / 1000
		if err != nil {
			l.Error, l.Code = err.Error(), "Unknown"
			if s, ok := status.FromError(err); ok {
				l.Code = s.Code().String()
				l.Error = s.Message()
			}
		} else if l.Labels, err = thanoswire.DecodeInfoResponse(reply); err != nil {
			l.Code, l.Error = "Decode", err.Error()
		}
		p.print(l)
		if wait := every - time.Since(started); wait > 0 {
			time.Sleep(wait)
		}
	}
}

func main() {
	server := flag.String("dns", "", "DNS server HOST:PORT (Atlas's DNS)")
	names := flag.String("names", "_grpc._tcp.sidecars.thanos.atlas.", "SRV names to resolve, comma-separated")
	targets := flag.String("targets", "", "targets to call, comma-separated (east-0,east-1,...)")
	domain := flag.String("domain", "sidecars.thanos.atlas.", "the SRV targets' parent, fully qualified")
	port := flag.String("port", "10901", "the SRV port (the observability Envoy's StoreAPI listener)")
	every := flag.Duration("every", 100*time.Millisecond, "one Info call per target this often")
	resolveEvery := flag.Duration("resolve-every", 250*time.Millisecond, "one SRV resolution per name this often")
	timeout := flag.Duration("timeout", time.Second, "deadline of each call")
	flag.Parse()
	p := &printer{out: json.NewEncoder(os.Stdout)}
	for _, name := range strings.Split(*names, ",") {
		if name != "" {
			go watchName(p, name, *server, *resolveEvery)
		}
	}
	for _, target := range strings.Split(*targets, ",") {
		if target != "" {
			endpoint := net.JoinHostPort(target+"."+*domain, *port)
			go watchTarget(p, target, endpoint, *server, *every, *timeout)
		}
	}
	select {}
}
