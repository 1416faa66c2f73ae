// Package thanoswire encodes and decodes the few Thanos StoreAPI and Info API messages the
// test tools exchange, field for field as in Thanos's storepb/rpc.proto, storepb/types.proto,
// labelpb/types.proto and infopb/rpc.proto (copied into the project's proto/ directory).
// The wire bytes are those of Thanos's generated code; only the Go types are ours, so the tools
// build offline against Debian's grpc-go without protoc.
package thanoswire

import (
	"errors"
	"fmt"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
)

// Raw is a gRPC codec whose messages are already-encoded bytes (*[]byte in, []byte out).
// It names itself "proto", so calls carry content-type application/grpc exactly as Thanos.
type Raw struct{}

func (Raw) Marshal(v interface{}) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("thanoswire.Raw: cannot marshal %T", v)
	}
	return b, nil
}

func (Raw) Unmarshal(data []byte, v interface{}) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("thanoswire.Raw: cannot unmarshal into %T", v)
	}
	*p = append((*p)[:0], data...)
	return nil
}

func (Raw) Name() string   { return "proto" }
func (Raw) String() string { return "proto" }

// Labels are a sorted label set.
type Labels map[string]string

func (l Labels) names() []string {
	names := make([]string, 0, len(l))
	for k := range l {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// label: thanos.Label {string name = 1; string value = 2;}
func appendLabel(b []byte, num protowire.Number, name, value string) []byte {
	var inner []byte
	inner = protowire.AppendTag(inner, 1, protowire.BytesType)
	inner = protowire.AppendString(inner, name)
	inner = protowire.AppendTag(inner, 2, protowire.BytesType)
	inner = protowire.AppendString(inner, value)
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

func appendLabels(b []byte, num protowire.Number, l Labels) []byte {
	for _, name := range l.names() {
		b = appendLabel(b, num, name, l[name])
	}
	return b
}

func appendMessage(b []byte, num protowire.Number, inner []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// InfoResponse is thanos.info.InfoResponse: label_sets = 1 (LabelSet{labels = 1}),
// ComponentType = 2, store = 3 (StoreInfo{min_time = 1, max_time = 2}).
func InfoResponse(l Labels, component string, minTime, maxTime int64) []byte {
	var b []byte
	b = appendMessage(b, 1, appendLabels(nil, 1, l))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, component)
	var store []byte
	store = appendVarint(store, 1, uint64(minTime))
	store = appendVarint(store, 2, uint64(maxTime))
	return appendMessage(b, 3, store)
}

// StoreInfoResponse is the legacy thanos.InfoResponse: labels = 1, min_time = 2,
// max_time = 3, storeType = 4 (SIDECAR = 3), label_sets = 5.
func StoreInfoResponse(l Labels, minTime, maxTime int64) []byte {
	var b []byte
	b = appendLabels(b, 1, l)
	b = appendVarint(b, 2, uint64(minTime))
	b = appendVarint(b, 3, uint64(maxTime))
	b = appendVarint(b, 4, 3)
	return appendMessage(b, 5, appendLabels(nil, 1, l))
}

// Matcher is thanos.LabelMatcher {Type type = 1; string name = 2; string value = 3;}.
type Matcher struct {
	Type        uint64 // 0 EQ, 1 NEQ, 2 RE, 3 NRE
	Name, Value string
}

// SeriesRequest is thanos.SeriesRequest: min_time = 1, max_time = 2, matchers = 3.
func SeriesRequest(minTime, maxTime int64, matchers []Matcher) []byte {
	var b []byte
	b = appendVarint(b, 1, uint64(minTime))
	b = appendVarint(b, 2, uint64(maxTime))
	for _, m := range matchers {
		var inner []byte
		if m.Type != 0 {
			inner = appendVarint(inner, 1, m.Type)
		}
		inner = protowire.AppendTag(inner, 2, protowire.BytesType)
		inner = protowire.AppendString(inner, m.Name)
		inner = protowire.AppendTag(inner, 3, protowire.BytesType)
		inner = protowire.AppendString(inner, m.Value)
		b = appendMessage(b, 3, inner)
	}
	return b
}

// SeriesFrame is thanos.SeriesResponse{series = 1}: Series{labels = 1, chunks = 2}, one
// AggrChunk{min_time = 1, max_time = 2, raw = 3 Chunk{type = 1 (XOR = 0), data = 2}}.
func SeriesFrame(l Labels, minTime, maxTime int64, data []byte) []byte {
	var chunk []byte
	chunk = protowire.AppendTag(chunk, 2, protowire.BytesType)
	chunk = protowire.AppendBytes(chunk, data)
	var aggr []byte
	aggr = appendVarint(aggr, 1, uint64(minTime))
	aggr = appendVarint(aggr, 2, uint64(maxTime))
	aggr = appendMessage(aggr, 3, chunk)
	series := appendLabels(nil, 1, l)
	series = appendMessage(series, 2, aggr)
	return appendMessage(nil, 1, series)
}

var errTruncated = errors.New("thanoswire: truncated message")

// fields calls fn for every field of b.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, value []byte, varint uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errTruncated
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return errTruncated
			}
			if err := fn(num, typ, v, 0); err != nil {
				return err
			}
			b = b[m:]
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return errTruncated
			}
			if err := fn(num, typ, nil, v); err != nil {
				return err
			}
			b = b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return errTruncated
			}
			b = b[m:]
		}
	}
	return nil
}

func decodeLabel(b []byte, into Labels) error {
	var name, value string
	err := fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			name = string(v)
		case 2:
			value = string(v)
		}
		return nil
	})
	into[name] = value
	return err
}

// DecodeInfoResponse returns the union of thanos.info.InfoResponse's label sets.
func DecodeInfoResponse(b []byte) (Labels, error) {
	out := Labels{}
	err := fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		if num != 1 {
			return nil
		}
		return fields(v, func(num protowire.Number, _ protowire.Type, label []byte, _ uint64) error {
			if num == 1 {
				return decodeLabel(label, out)
			}
			return nil
		})
	})
	return out, err
}

// DecodeSeriesFrame returns a frame's series labels and the size of its chunk data, or the
// warning it carries instead.
func DecodeSeriesFrame(b []byte) (labels Labels, chunkBytes int, warning string, err error) {
	err = fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 2:
			warning = string(v)
		case 1:
			labels = Labels{}
			return fields(v, func(num protowire.Number, _ protowire.Type, f []byte, _ uint64) error {
				if num == 1 {
					return decodeLabel(f, labels)
				}
				if num == 2 {
					chunkBytes += len(f)
				}
				return nil
			})
		}
		return nil
	})
	return labels, chunkBytes, warning, err
}

// DecodeSeriesRequest returns the request's equality matchers (name → value).
func DecodeSeriesRequest(b []byte) (map[string]string, error) {
	out := map[string]string{}
	err := fields(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		if num != 3 {
			return nil
		}
		var m Matcher
		err := fields(v, func(num protowire.Number, _ protowire.Type, f []byte, x uint64) error {
			switch num {
			case 1:
				m.Type = x
			case 2:
				m.Name = string(f)
			case 3:
				m.Value = string(f)
			}
			return nil
		})
		if m.Type == 0 {
			out[m.Name] = m.Value
		}
		return err
	})
	return out, err
}
