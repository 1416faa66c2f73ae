// Package thanosdns resolves names as Thanos Query does for --endpoint=dnssrvnoa+<name>
// with its default miekgdns resolver (pkg/discovery/dns): the SRV question is
// dns.Fqdn(name) with EDNS0 (4096) over UDP, retried over TCP when truncated; any Answer
// record that is not SRV is an error; each target is joined exactly as returned (fully
// qualified, trailing dot) with the SRV port.
package thanosdns

import (
	"fmt"
	"net"
	"strconv"

	"github.com/miekg/dns"
)

// Ask sends one question to server (HOST:PORT), over TCP again when the UDP answer is
// truncated.
func Ask(name string, qtype uint16, server string) (*dns.Msg, error) {
	client := &dns.Client{}
	msg := &dns.Msg{}
	msg.SetQuestion(dns.Fqdn(name), qtype)
	msg.SetEdns0(dns.DefaultMsgSize, false)
	response, _, err := client.Exchange(msg, server)
	if err != nil {
		return nil, err
	}
	if response.Truncated {
		client.Net = "tcp"
		msg = &dns.Msg{}
		msg.SetQuestion(dns.Fqdn(name), qtype)
		response, _, err = client.Exchange(msg, server)
		if err != nil {
			return nil, err
		}
	}
	return response, nil
}

// Answer is one SRV resolution: its rcode and the endpoints Thanos would dial.
type Answer struct {
	Rcode     string
	Endpoints []string
}

// ResolveSRVNoA is Thanos's dnsSD.Resolve for SRVNoA. An rcode other than NOERROR and
// NXDOMAIN is an error (Thanos keeps its endpoints then); NXDOMAIN is no endpoints.
func ResolveSRVNoA(name, server string) (Answer, error) {
	host, port, err := net.SplitHostPort(name)
	if err != nil {
		host, port = name, ""
	}
	response, err := Ask(host, dns.TypeSRV, server)
	if err != nil {
		return Answer{}, err
	}
	answer := Answer{Rcode: dns.RcodeToString[response.Rcode]}
	if response.Rcode != dns.RcodeSuccess && response.Rcode != dns.RcodeNameError {
		return answer, fmt.Errorf("could not resolve %s: rcode %s", host, answer.Rcode)
	}
	for _, record := range response.Answer {
		srv, ok := record.(*dns.SRV)
		if !ok {
			return answer, fmt.Errorf("invalid SRV response record %s", record)
		}
		p := port
		if p == "" {
			p = strconv.Itoa(int(srv.Port))
		}
		answer.Endpoints = append(answer.Endpoints, net.JoinHostPort(srv.Target, p))
	}
	return answer, nil
}
