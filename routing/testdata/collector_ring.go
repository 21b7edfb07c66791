// Command collector_ring prints test vectors for tailgate's `collector` hashing mode.
//
// It re-implements, with the Go standard library only, the hash ring of the OpenTelemetry Collector
// contrib `loadbalancing` exporter as of v0.115.0 (exporter/loadbalancingexporter/consistent_hashing.go
// and the resolvers that feed it):
//   - the resolvers sort the endpoint strings (sort.Strings) before building the ring;
//   - each endpoint gets 100 points: crc32.ChecksumIEEE(endpoint bytes followed by one byte i) % 36000,
//     for i in 0..99; a position already taken (by an earlier endpoint in sorted order, or by an earlier
//     point of the same endpoint) is skipped;
//   - points are sorted by position;
//   - a key (the 16 raw trace ID bytes, or the service name bytes) is hashed with crc32 IEEE, % 36000,
//     and the ring answers with the first point at or after that position, wrapping to the first point,
//     using the exporter's recursive "bsearch" as written there (reproduced here so a difference
//     between that search and a plain lower bound would show up in the vectors).
//
// Regenerate (from the repository root):
//
//	go run routing/testdata/collector_ring.go > routing/testdata/collector_ring_vectors.txt
//
// Output format, one record per line, fields separated by single spaces:
//
//	set <name> <endpoint>...        endpoints as given to the resolver (unsorted, maybe duplicated)
//	ring <points>                   number of points on the ring after de-duplication
//	run <position> <endpoint>       positions from <position> up to the next run map to <endpoint>
//	trace <32 hex digits> <endpoint>
//	service <name> <endpoint>
//	end
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"sort"
)

const maxPositions uint32 = 36000
const pointsPerEndpoint = 100

type ringItem struct {
	pos      uint32
	endpoint string
}

func buildRing(endpoints []string) []ringItem {
	sorted := append([]string(nil), endpoints...)
	sort.Strings(sorted)
	var items []ringItem
	taken := map[uint32]bool{}
	for _, ep := range sorted {
		for i := 0; i < pointsPerEndpoint; i++ {
			buf := append([]byte(ep), byte(i))
			pos := crc32.ChecksumIEEE(buf) % maxPositions
			if taken[pos] {
				continue
			}
			taken[pos] = true
			items = append(items, ringItem{pos: pos, endpoint: ep})
		}
	}
	sort.Slice(items, func(a, b int) bool { return items[a].pos < items[b].pos })
	return items
}

// find follows the exporter's findEndpoint/bsearch structure.
func find(items []ringItem, pos uint32) string {
	if len(items) == 0 {
		return ""
	}
	return bsearch(pos, items[:len(items)/2], items[len(items)/2:]).endpoint
}

func bsearch(pos uint32, left, right []ringItem) ringItem {
	if left[len(left)-1].pos == pos {
		return left[len(left)-1]
	}
	if right[0].pos == pos {
		return right[0]
	}
	if pos > right[len(right)-1].pos {
		return left[0]
	}
	if pos > left[len(left)-1].pos {
		if len(right) == 1 {
			return right[0]
		}
		return bsearch(pos, right[:len(right)/2], right[len(right)/2:])
	}
	if len(left) == 1 {
		return left[0]
	}
	return bsearch(pos, left[:len(left)/2], left[len(left)/2:])
}

func endpointFor(items []ringItem, key []byte) string {
	return find(items, crc32.ChecksumIEEE(key)%maxPositions)
}

// splitmix64, so the trace IDs are reproducible without math/rand's version-dependent streams.
type splitmix struct{ state uint64 }

func (s *splitmix) next() uint64 {
	s.state += 0x9E3779B97F4A7C15
	z := s.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

type set struct {
	name      string
	endpoints []string
}

func sets() []set {
	out := []set{
		{"dns3", []string{"10.0.0.3:4317", "10.0.0.1:4317", "10.0.0.2:4317"}},
		{"dns3-duplicate", []string{"10.0.0.2:4317", "10.0.0.1:4317", "10.0.0.3:4317", "10.0.0.1:4317"}},
		{"single", []string{"gateway-0.gateway-headless:4317"}},
		{"no-port", []string{"gw-b", "gw-a"}},
		{"ipv6", []string{"[fd00::2]:4317", "[fd00::1]:4317", "[fd00::10]:4317"}},
	}
	var sts []string
	for i := 4; i >= 0; i-- {
		sts = append(sts, fmt.Sprintf("gateway-%d.gateway-headless.observability.svc.cluster.local:4317", i))
	}
	out = append(out, set{"statefulset5", sts})
	var ips []string
	for i := 16; i >= 1; i-- {
		ips = append(ips, fmt.Sprintf("10.1.%d.%d:4317", i/8, 10+i))
	}
	out = append(out, set{"dns16", ips})
	return out
}

func main() {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	services := []string{"checkout", "frontend", "cart", "payment", "ad-service", "email", "", "ünïcode-svc"}
	for si, s := range sets() {
		items := buildRing(s.endpoints)
		fmt.Fprintf(w, "set %s", s.name)
		for _, ep := range s.endpoints {
			fmt.Fprintf(w, " %s", ep)
		}
		fmt.Fprintf(w, "\nring %d\n", len(items))
		prev := ""
		for pos := uint32(0); pos < maxPositions; pos++ {
			ep := find(items, pos)
			if ep != prev {
				fmt.Fprintf(w, "run %d %s\n", pos, ep)
				prev = ep
			}
		}
		rng := splitmix{state: 0x7461696c67617465 + uint64(si)}
		for i := 0; i < 400; i++ {
			var tid [16]byte
			binary.BigEndian.PutUint64(tid[:8], rng.next())
			binary.BigEndian.PutUint64(tid[8:], rng.next())
			if i%50 == 0 {
				// 64-bit (Jaeger/Zipkin style) trace IDs: the high half is zero.
				for j := 0; j < 8; j++ {
					tid[j] = 0
				}
			}
			fmt.Fprintf(w, "trace %s %s\n", hex.EncodeToString(tid[:]), endpointFor(items, tid[:]))
		}
		for _, svc := range services {
			if svc == "" {
				continue // an empty field would not survive the space-separated format
			}
			fmt.Fprintf(w, "service %s %s\n", svc, endpointFor(items, []byte(svc)))
		}
		fmt.Fprintln(w, "end")
	}
}
