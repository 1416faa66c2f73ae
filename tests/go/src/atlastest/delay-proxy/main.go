// delay-proxy forwards TCP connections and delays every byte by a fixed time in each
// direction, for bench/tunnel.py: a link with a round-trip time of twice -delay and no
// bandwidth limit of its own, on loopback, where the kernel has no netem.
//
// Each direction is a delay line: a reader stamps each chunk it reads with its arrival time,
// a writer sends it when that time plus -delay has come. The line holds at most -buffer
// bytes; when it is full the reader stops, and TCP's flow control pushes back on the sender,
// as a real path's bandwidth-delay product does.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

type chunk struct {
	due  time.Time
	data []byte
}

func pipe(dst, src net.Conn, delay time.Duration, buffer int) {
	line := make(chan chunk, buffer/(32*1024)+1)
	go func() {
		defer close(line)
		for {
			buf := make([]byte, 32*1024)
			n, err := src.Read(buf)
			if n > 0 {
				line <- chunk{time.Now().Add(delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	broken := false
	for c := range line { // drained to the end, so the reader never blocks on a dead line
		if broken {
			continue
		}
		if wait := time.Until(c.due); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := dst.Write(c.data); err != nil {
			broken = true
			src.Close() // the reader's next Read fails: this direction ends
		}
	}
	if tcp, ok := dst.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "HOST:PORT to accept on")
	target := flag.String("target", "", "HOST:PORT to forward to")
	delay := flag.Duration("delay", 25*time.Millisecond, "one-way delay (RTT is twice this)")
	buffer := flag.Int("buffer", 64<<20, "bytes in flight per direction")
	flag.Parse()
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(lis.Addr().String())
	for {
		in, err := lis.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func(in net.Conn) {
			// The connection itself is set up after one round trip, as on a real path.
			time.Sleep(2 * *delay)
			out, err := net.Dial("tcp", *target)
			if err != nil {
				in.Close()
				return
			}
			done := make(chan struct{}, 2)
			go func() { pipe(out, in, *delay, *buffer); done <- struct{}{} }()
			go func() { pipe(in, out, *delay, *buffer); done <- struct{}{} }()
			<-done
			<-done
			in.Close()
			out.Close()
		}(in)
	}
}
