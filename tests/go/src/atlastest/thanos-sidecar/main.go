// thanos-sidecar serves the Thanos StoreAPI with grpc-go's own server and its default
// keepalive enforcement (at most one ping per 5 minutes, none without an active stream, three
// strikes then GOAWAY ENHANCE_YOUR_CALM "too_many_pings"), as a real Thanos sidecar does.
// It answers /thanos.info.Info/Info, the legacy /thanos.Store/Info, and /thanos.Store/Series
// with -series frames of -chunk-bytes each. A Series for {__name__="<-slow-metric>"} pauses
// -pause after -pause-after frames, as a slow query over a long range does.
// Every accepted connection is logged on stderr ("accepted connection N"), so a test can tell
// whether its peer had to reconnect.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"atlastest/thanoswire"
)

type countingListener struct {
	net.Listener
	accepted int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		n := atomic.AddInt64(&l.accepted, 1)
		fmt.Fprintf(os.Stderr, "accepted connection %d from %s\n", n, c.RemoteAddr())
	}
	return c, err
}

func main() {
	listen := flag.String("listen", "127.0.0.1:10901", "HOST:PORT")
	labelsFlag := flag.String("labels", "", "external labels, NAME=VALUE,NAME=VALUE")
	series := flag.Int("series", 3, "Series frames per call")
	chunkBytes := flag.Int("chunk-bytes", 256, "chunk data bytes per frame")
	slowMetric := flag.String("slow-metric", "slow", "metric name whose Series pauses")
	pauseAfter := flag.Int("pause-after", 2, "frames sent before the pause")
	pause := flag.Duration("pause", 90*time.Second, "how long a slow Series sends nothing")
	flag.Parse()

	labels := thanoswire.Labels{}
	for _, kv := range strings.Split(*labelsFlag, ",") {
		if parts := strings.SplitN(kv, "=", 2); len(parts) == 2 {
			labels[parts[0]] = parts[1]
		}
	}
	const minTime, maxTime = 0, 1 << 62
	info := thanoswire.InfoResponse(labels, "sidecar", minTime, maxTime)
	storeInfo := thanoswire.StoreInfoResponse(labels, minTime, maxTime)
	chunk := make([]byte, *chunkBytes)

	handler := func(_ interface{}, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		var request []byte
		if err := stream.RecvMsg(&request); err != nil {
			return err
		}
		switch method {
		case "/thanos.info.Info/Info":
			return stream.SendMsg(info)
		case "/thanos.Store/Info":
			return stream.SendMsg(storeInfo)
		case "/thanos.Store/Series":
			matchers, err := thanoswire.DecodeSeriesRequest(request)
			if err != nil {
				return status.Error(codes.InvalidArgument, err.Error())
			}
			name := matchers["__name__"]
			if name == "" {
				name = "up"
			}
			for i := 0; i < *series; i++ {
				if name == *slowMetric && i == *pauseAfter {
					time.Sleep(*pause)
				}
				l := thanoswire.Labels{"__name__": name, "series": fmt.Sprint(i)}
				for k, v := range labels {
					l[k] = v
				}
				if err := stream.SendMsg(thanoswire.SeriesFrame(l, minTime, maxTime, chunk)); err != nil {
					return err
				}
			}
			return nil
		}
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server := grpc.NewServer(grpc.CustomCodec(thanoswire.Raw{}), grpc.UnknownServiceHandler(handler))
	fmt.Fprintf(os.Stderr, "serving on %s\n", lis.Addr())
	if err := server.Serve(&countingListener{Listener: lis}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
