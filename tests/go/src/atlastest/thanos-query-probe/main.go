// thanos-query-probe discovers and dials Thanos StoreAPI endpoints exactly as Thanos Query
// does for --endpoint=dnssrvnoa+<name> with its default miekgdns resolver, then calls what
// Thanos Query calls: /thanos.info.Info/Info for every endpoint and a /thanos.Store/Series
// stream. It prints one JSON object per endpoint on stdout.
//
// Faithful to Thanos (pkg/discovery/dns, pkg/extgrpc, pkg/query/endpointset.go):
//   - the SRV resolution of package thanosdns (Thanos's miekgdns resolver, dnssrvnoa+);
//   - grpc-go dials that string as it is, so the :authority is "<target>.:<port>";
//     MaxCallRecvMsgSize(math.MaxInt32), insecure transport, no client keepalive.
//
// The only difference: Thanos's resolv.conf names the DNS server on port 53; here -dns names
// Atlas's DNS address and port, and the target's A lookup (done by Go's resolver when grpc-go
// dials) is sent there too, as CoreDNS's forward stanza would.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"atlastest/thanosdns"
	"atlastest/thanoswire"
)

type result struct {
	Endpoint     string            `json:"endpoint"`
	InfoLabels   map[string]string `json:"info_labels,omitempty"`
	InfoError    string            `json:"info_error,omitempty"`
	InfoCode     string            `json:"info_code,omitempty"`
	Series       int               `json:"series"`
	SeriesBytes  int               `json:"series_bytes"`
	SeriesLabels map[string]string `json:"series_labels,omitempty"`
	SeriesError  string            `json:"series_error,omitempty"`
	SeriesCode   string            `json:"series_code,omitempty"`
	SeriesMillis int64             `json:"series_ms"`
}

// resolve is Thanos's dnsSD.Resolve for SRVNoA with the miekgdns resolver.
func resolve(name, server string) ([]string, error) {
	answer, err := thanosdns.ResolveSRVNoA(name, server)
	return answer.Endpoints, err
}

func codeOf(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Code().String()
	}
	return "Unknown"
}

func probe(ctx context.Context, endpoint, dnsServer string, seriesTimeout time.Duration, matchers []thanoswire.Matcher) result {
	r := result{Endpoint: endpoint}
	resolver := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, dnsServer)
		},
	}
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{Resolver: resolver}).DialContext(ctx, "tcp", addr)
	}
	conn, err := grpc.DialContext(ctx, endpoint,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
		grpc.WithInsecure(),
		grpc.WithContextDialer(dialer),
	)
	if err != nil {
		r.InfoError = err.Error()
		return r
	}
	defer conn.Close()
	raw := grpc.ForceCodec(thanoswire.Raw{})

	infoCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	var reply []byte
	err = conn.Invoke(infoCtx, "/thanos.info.Info/Info", []byte{}, &reply, raw)
	cancel()
	if err != nil {
		r.InfoError, r.InfoCode = err.Error(), codeOf(err)
	} else if r.InfoLabels, err = thanoswire.DecodeInfoResponse(reply); err != nil {
		r.InfoError = err.Error()
	}
	if seriesTimeout <= 0 {
		return r
	}
	started := time.Now()
	seriesCtx, cancel := context.WithTimeout(ctx, seriesTimeout)
	defer cancel()
	desc := &grpc.StreamDesc{StreamName: "Series", ServerStreams: true}
	stream, err := conn.NewStream(seriesCtx, desc, "/thanos.Store/Series", raw)
	if err == nil {
		err = stream.SendMsg(thanoswire.SeriesRequest(0, math.MaxInt64, matchers))
	}
	if err == nil {
		err = stream.CloseSend()
	}
	for err == nil {
		var frame []byte
		if err = stream.RecvMsg(&frame); err != nil {
			break
		}
		labels, size, _, derr := thanoswire.DecodeSeriesFrame(frame)
		if derr != nil {
			err = derr
			break
		}
		if labels != nil {
			r.Series++
			r.SeriesBytes += size
			if r.SeriesLabels == nil {
				r.SeriesLabels = labels
			}
		}
	}
	if !errors.Is(err, io.EOF) {
		r.SeriesError, r.SeriesCode = err.Error(), codeOf(err)
	}
	r.SeriesMillis = time.Since(started).Milliseconds()
	return r
}

func main() {
	dnsServer := flag.String("dns", "", "DNS server HOST:PORT (Atlas's DNS)")
	endpointFlag := flag.String("endpoint", "dnssrvnoa+_grpc._tcp.sidecars.thanos.atlas.", "as Thanos Query's --endpoint")
	seriesTimeout := flag.Duration("series-timeout", 30*time.Second, "Series stream deadline (0: no Series call)")
	matcher := flag.String("matcher", "__name__=up", "NAME=VALUE equality matcher for Series")
	flag.Parse()
	prefix, name := "", *endpointFlag
	if i := strings.Index(name, "+"); i >= 0 {
		prefix, name = name[:i], name[i+1:]
	}
	var endpoints []string
	switch prefix {
	case "dnssrvnoa":
		var err error
		if endpoints, err = resolve(name, *dnsServer); err != nil {
			fmt.Fprintln(os.Stderr, "resolve:", err)
			os.Exit(1)
		}
	case "":
		endpoints = []string{name}
	default:
		fmt.Fprintln(os.Stderr, "only dnssrvnoa+ and plain addresses are supported, got", prefix)
		os.Exit(2)
	}
	var matchers []thanoswire.Matcher
	if parts := strings.SplitN(*matcher, "=", 2); len(parts) == 2 {
		matchers = append(matchers, thanoswire.Matcher{Name: parts[0], Value: parts[1]})
	}
	results := make(chan result, len(endpoints))
	for _, e := range endpoints {
		go func(e string) { results <- probe(context.Background(), e, *dnsServer, *seriesTimeout, matchers) }(e)
	}
	out := json.NewEncoder(os.Stdout)
	for range endpoints {
		if err := out.Encode(<-results); err != nil {
			os.Exit(1)
		}
	}
}
