// gen_vectors prints reference vectors for the probabilistic policy, computed exactly as the
// collector's tail sampling processor does (hash/fnv FNV-1a 64 over salt then trace ID; threshold
// from big.Float). Standard library only. Regenerate with:
//
//	go run gen_vectors.go > probabilistic_vectors.json
package main

import (
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	"math"
	"math/big"
	"os"
)

const defaultHashSalt = "default-hash-seed"

func calculateThreshold(ratio float64) uint64 {
	boundary := new(big.Float).SetInt(new(big.Int).SetUint64(math.MaxUint64))
	res, _ := boundary.Mul(boundary, big.NewFloat(ratio)).Uint64()
	return res
}

func hashTraceID(salt string, b []byte) uint64 {
	hasher := fnv.New64a()
	_, _ = hasher.Write([]byte(salt))
	_, _ = hasher.Write(b)
	return hasher.Sum64()
}

type thresholdVector struct {
	Percentage float64 `json:"percentage"`
	Threshold  string  `json:"threshold"` // decimal, to survive JSON number precision
}

type hashVector struct {
	Salt       string  `json:"salt"`
	TraceID    string  `json:"trace_id"`
	Hash       string  `json:"hash"`
	Percentage float64 `json:"percentage"`
	Sampled    bool    `json:"sampled"`
}

type vectors struct {
	Thresholds []thresholdVector `json:"thresholds"`
	Hashes     []hashVector      `json:"hashes"`
}

// A deterministic generator (splitmix64) so the vectors are reproducible without math/rand.
type splitmix struct{ state uint64 }

func (s *splitmix) next() uint64 {
	s.state += 0x9e3779b97f4a7c15
	z := s.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func main() {
	percentages := []float64{0, 0.0001, 0.01, 0.1, 1, 1.5, 5, 10, 12.345, 25, 33.333, 50, 66.6, 75, 90, 99, 99.9, 99.99999, 100, 150, -1}
	out := vectors{}
	for _, p := range percentages {
		out.Thresholds = append(out.Thresholds, thresholdVector{p, new(big.Int).SetUint64(calculateThreshold(p / 100)).String()})
	}
	rng := &splitmix{state: 42}
	salts := []string{"", "custom-salt", "tailgate", "ünïcode"}
	for i := 0; i < 200; i++ {
		var id [16]byte
		for j := 0; j < 2; j++ {
			v := rng.next()
			for k := 0; k < 8; k++ {
				id[j*8+k] = byte(v >> (8 * k))
			}
		}
		if i == 0 {
			id = [16]byte{}
		}
		salt := salts[i%len(salts)]
		effective := salt
		if effective == "" {
			effective = defaultHashSalt
		}
		p := percentages[i%len(percentages)]
		h := hashTraceID(effective, id[:])
		out.Hashes = append(out.Hashes, hashVector{
			Salt:       salt,
			TraceID:    hex.EncodeToString(id[:]),
			Hash:       new(big.Int).SetUint64(h).String(),
			Percentage: p,
			Sampled:    h <= calculateThreshold(p/100),
		})
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}
