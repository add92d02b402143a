package klaviyosim

import (
	"bytes"
	"slices"
	"strconv"
	"time"
)

// record is the compact, stored form of a profile: everything else is
// recomputed from seed (stable attributes) and seed+rev (attributes that
// change on UpdateProfiles). 64 bytes per profile keeps a million profiles
// at ~64 MB.
type record struct {
	id      [26]byte
	created int64 // unix seconds
	updated int64 // unix seconds
	seed    uint64
	serial  uint32 // creation order, makes e-mails unique
	rev     uint32 // number of UpdateProfiles applied
}

// Independent random streams per section, so that skipping a section (sparse
// fieldsets) never shifts the values of another.
const (
	streamGroups uint64 = iota + 1
	streamRecord
	streamName
	streamEmail
	streamPhone
	streamExternal
	streamIdentity
	streamLocation
	streamMutable
	streamProperties
	streamSubscriptions
	streamPredictive
	streamRelations
)

// rng is splitmix64: tiny, fast, and good enough for synthetic data.
type rng struct{ s uint64 }

func mix(a, b uint64) uint64 {
	z := a ^ (b * 0x9E3779B97F4A7C15)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func newRNG(seed, stream uint64) rng { return rng{s: mix(seed, stream)} }

func (r *rng) u64() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// intn returns a value in [0, n); n must be > 0 and < 2^32.
func (r *rng) intn(n int) int { return int((r.u64() >> 32) * uint64(n) >> 32) }

// pct is true with probability p percent.
func (r *rng) pct(p int) bool { return r.intn(100) < p }

// float returns a value in [0, 1).
func (r *rng) float() float64 { return float64(r.u64()>>11) / (1 << 53) }

func pick[T any](r *rng, s []T) T { return s[r.intn(len(s))] }

// generate builds the initial data set. Profiles arrive in groups: most
// groups are one profile, some are bulk imports of 5-300 profiles sharing
// one created second. Groups are spread over [start, end).
func generate(seed int64, n int, start, end time.Time) []record {
	recs := make([]record, 0, n)
	r := newRNG(uint64(seed), streamGroups)
	var sizes []int32
	for total := 0; total < n; {
		size := 1
		if r.intn(1000) < 15 {
			size = 5 + r.intn(296)
		}
		if total+size > n {
			size = n - total
		}
		sizes = append(sizes, int32(size))
		total += size
	}
	s0, s1 := start.Unix(), end.Unix()
	span := float64(s1 - s0)
	g := float64(len(sizes))
	for i, size := range sizes {
		t := s0 + int64((float64(i)+r.float())*span/g)
		if t >= s1 {
			t = s1 - 1
		}
		first := len(recs)
		for range size {
			recs = append(recs, newRecord(uint64(seed), uint32(len(recs)), t, s1))
		}
		if size > 1 {
			group := recs[first:]
			slices.SortFunc(group, func(a, b record) int { return bytes.Compare(a.id[:], b.id[:]) })
		}
	}
	return recs
}

// newRecord derives one profile from the seed and its serial. updated is in
// [created, max(created, end)], biased toward created.
func newRecord(seed uint64, serial uint32, created, end int64) record {
	h := newRNG(seed, uint64(serial)<<8|streamRecord)
	rec := record{created: created, updated: created, seed: h.u64(), serial: serial}
	ms := created*1000 + int64(h.intn(1000))
	rec.id = ulid(ms, h.u64(), uint16(h.u64()))
	if !h.pct(35) && end > created {
		f := h.float()
		rec.updated = created + int64(f*f*f*float64(end-created))
	}
	return rec
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ulid encodes a 48-bit millisecond time and 80 random bits the way ULIDs
// are written: 26 Crockford base32 characters, sortable by time.
func ulid(ms int64, r64 uint64, r16 uint16) [26]byte {
	if ms < 0 {
		ms = 0
	}
	var b [16]byte
	t := uint64(ms) & (1<<48 - 1)
	for i := 5; i >= 0; i-- {
		b[i] = byte(t)
		t >>= 8
	}
	b[6], b[7] = byte(r16>>8), byte(r16)
	for i := 15; i >= 8; i-- {
		b[i] = byte(r64)
		r64 >>= 8
	}
	// 128 bits → 26 chars of 5 bits; the first char holds the top 3 bits.
	var out [26]byte
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 | uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return out
}

// The next three functions are shared by rendering and by filtering, so a
// filter on email/phone_number/external_id matches exactly what is rendered.
// Each returns ok=false when the attribute is null.

func appendEmail(dst []byte, rec *record) ([]byte, bool) {
	r := newRNG(rec.seed, streamEmail)
	if r.pct(8) {
		return dst, false
	}
	n := newRNG(rec.seed, streamName)
	fn, ln := pick(&n, firstNames), pick(&n, lastNames)
	if r.pct(1) {
		dst = append(dst, fn.text...) // a Unicode local part (RFC 6531)
	} else {
		dst = append(dst, fn.slug...)
	}
	dst = append(dst, '.')
	dst = append(dst, ln.slug...)
	dst = strconv.AppendUint(dst, uint64(rec.serial), 10)
	if r.pct(3) {
		dst = append(dst, "+promo"...) // a '+' that must survive URL encoding
	}
	dst = append(dst, '@')
	dst = append(dst, pick(&r, domains)...)
	return dst, true
}

func appendPhone(dst []byte, rec *record) ([]byte, bool) {
	r := newRNG(rec.seed, streamPhone)
	if !r.pct(60) {
		return dst, false
	}
	switch r.intn(6) {
	case 0, 1, 2:
		dst = append(dst, "+1"...)
		dst = strconv.AppendInt(dst, int64(201+r.intn(789)), 10)
		dst = appendDigits(dst, &r, 7)
	case 3:
		dst = append(dst, "+447700900"...)
		dst = appendDigits(dst, &r, 3)
	case 4:
		dst = append(dst, "+336"...)
		dst = appendDigits(dst, &r, 8)
	default:
		dst = append(dst, "+8190"...)
		dst = appendDigits(dst, &r, 8)
	}
	return dst, true
}

func appendExternalID(dst []byte, rec *record) ([]byte, bool) {
	r := newRNG(rec.seed, streamExternal)
	if !r.pct(45) {
		return dst, false
	}
	switch r.intn(4) {
	case 0:
		dst = appendUUID(dst, r.u64(), r.u64())
	case 1:
		dst = append(dst, "shopify:"...)
		dst = strconv.AppendUint(dst, r.u64()%1e13, 10)
	case 2:
		dst = strconv.AppendUint(dst, uint64(rec.serial)+100000, 10)
	default:
		dst = append(dst, "CRM-"...)
		dst = appendDigits(dst, &r, 6)
	}
	return dst, true
}

func appendDigits(dst []byte, r *rng, n int) []byte {
	for range n {
		dst = append(dst, byte('0'+r.intn(10)))
	}
	return dst
}

func appendUUID(dst []byte, a, b uint64) []byte {
	const hex = "0123456789abcdef"
	var raw [16]byte
	for i := range 8 {
		raw[i] = byte(a >> (56 - 8*i))
		raw[8+i] = byte(b >> (56 - 8*i))
	}
	raw[6] = raw[6]&0x0f | 0x40
	raw[8] = raw[8]&0x3f | 0x80
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[c>>4], hex[c&15])
	}
	return dst
}
