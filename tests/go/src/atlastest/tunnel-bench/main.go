// tunnel-bench measures what a Thanos Query sees of one StoreAPI endpoint, for
// bench/tunnel.py: the latency of small /thanos.info.Info/Info calls, and the time to first
// frame and total time of /thanos.Store/Series streams. It dials as Thanos Query does
// (grpc-go, insecure, MaxCallRecvMsgSize(math.MaxInt32), no keepalive) and prints one JSON
// object on stdout with every sample in microseconds.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"google.golang.org/grpc"

	"atlastest/thanoswire"
)

type report struct {
	InfoMicros   []int64 `json:"info_us"`
	FirstMicros  []int64 `json:"series_first_us"`
	SeriesMicros []int64 `json:"series_us"`
	SeriesBytes  int64   `json:"series_bytes"`
	Frames       int64   `json:"frames"`
}

func main() {
	endpoint := flag.String("endpoint", "", "HOST:PORT to connect to")
	authority := flag.String("authority", "", ":authority (default: -endpoint); Thanos sends the SRV target with its trailing dot and port")
	infoCalls := flag.Int("info", 200, "Info calls, one after another")
	series := flag.Int("series", 3, "Series streams, one after another")
	metric := flag.String("metric", "big", "__name__ matcher of the Series calls")
	flag.Parse()

	ctx := context.Background()
	options := []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
		grpc.WithInsecure(),
	}
	if *authority != "" {
		options = append(options, grpc.WithAuthority(*authority))
	}
	conn, err := grpc.DialContext(ctx, *endpoint, options...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	raw := grpc.ForceCodec(thanoswire.Raw{})
	var r report
	// One call first so that the connection (and Envoy's upstream one) exists: a Querier
	// keeps its connections, and the first call's dial is not what is measured.
	var reply []byte
	if err := conn.Invoke(ctx, "/thanos.info.Info/Info", []byte{}, &reply, raw); err != nil {
		fmt.Fprintln(os.Stderr, "info:", err)
		os.Exit(1)
	}
	for i := 0; i < *infoCalls; i++ {
		start := time.Now()
		if err := conn.Invoke(ctx, "/thanos.info.Info/Info", []byte{}, &reply, raw); err != nil {
			fmt.Fprintln(os.Stderr, "info:", err)
			os.Exit(1)
		}
		r.InfoMicros = append(r.InfoMicros, time.Since(start).Microseconds())
	}
	matchers := []thanoswire.Matcher{{Name: "__name__", Value: *metric}}
	for i := 0; i < *series; i++ {
		start := time.Now()
		desc := &grpc.StreamDesc{StreamName: "Series", ServerStreams: true}
		stream, err := conn.NewStream(ctx, desc, "/thanos.Store/Series", raw)
		if err == nil {
			err = stream.SendMsg(thanoswire.SeriesRequest(0, math.MaxInt64, matchers))
		}
		if err == nil {
			err = stream.CloseSend()
		}
		first := true
		for err == nil {
			var frame []byte
			if err = stream.RecvMsg(&frame); err != nil {
				break
			}
			if first {
				r.FirstMicros = append(r.FirstMicros, time.Since(start).Microseconds())
				first = false
			}
			r.Frames++
			r.SeriesBytes += int64(len(frame))
		}
		if !errors.Is(err, io.EOF) {
			fmt.Fprintln(os.Stderr, "series:", err)
			os.Exit(1)
		}
		r.SeriesMicros = append(r.SeriesMicros, time.Since(start).Microseconds())
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		os.Exit(1)
	}
}
