package klaviyosim

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// Cursors are keyset positions: the sort key and id of the last (or, for
// links.prev, the first) record of a page. They are opaque to clients:
// standard base64 (so they contain '+', '/' and '=' that a client must
// escape) of a binary record sealed with an HMAC, so a tampered or foreign
// cursor is refused instead of silently walking elsewhere.

type sortField uint8

const (
	sortID sortField = iota
	sortCreated
	sortUpdated
	sortEmail
)

var sortNames = [...]string{sortID: "id", sortCreated: "created", sortUpdated: "updated", sortEmail: "email"}

type cursor struct {
	field  sortField
	desc   bool
	before bool   // a links.prev cursor: the page that ends before this key
	num    int64  // created/updated
	str    string // email ("" = null)
	id     [26]byte
}

const (
	cursorVersion = 1
	macLen        = 8
)

var errBadCursor = errors.New("invalid cursor")

type cursorCodec struct{ key []byte }

func newCursorCodec(seed int64) cursorCodec {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seed))
	sum := sha256.Sum256(append([]byte("klaviyosim cursor key\x00"), b[:]...))
	return cursorCodec{key: sum[:]}
}

func (cc cursorCodec) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, cc.key)
	m.Write(payload)
	return m.Sum(nil)[:macLen]
}

func (cc cursorCodec) encode(c cursor) string {
	b := make([]byte, 0, 64+len(c.str))
	var flags byte
	if c.desc {
		flags |= 1
	}
	if c.before {
		flags |= 2
	}
	b = append(b, cursorVersion, byte(c.field), flags)
	b = binary.BigEndian.AppendUint64(b, uint64(c.num))
	b = binary.AppendUvarint(b, uint64(len(c.str)))
	b = append(b, c.str...)
	b = append(b, c.id[:]...)
	b = append(b, cc.mac(b)...)
	return base64.StdEncoding.EncodeToString(b)
}

func (cc cursorCodec) decode(s string) (cursor, error) {
	var c cursor
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return c, errBadCursor
	}
	if len(b) < 3+8+1+26+macLen {
		return c, errBadCursor
	}
	payload, sum := b[:len(b)-macLen], b[len(b)-macLen:]
	if !hmac.Equal(sum, cc.mac(payload)) || payload[0] != cursorVersion || payload[1] > byte(sortEmail) || payload[2] > 3 {
		return c, errBadCursor
	}
	c.field, c.desc, c.before = sortField(payload[1]), payload[2]&1 != 0, payload[2]&2 != 0
	c.num = int64(binary.BigEndian.Uint64(payload[3:11]))
	n, k := binary.Uvarint(payload[11:])
	if k <= 0 || uint64(len(payload)-11-k) != n+26 {
		return c, errBadCursor
	}
	rest := payload[11+k:]
	c.str = string(rest[:n])
	copy(c.id[:], rest[n:])
	return c, nil
}

// keyOf is the cursor position of a record under a sort field.
func keyOf(rec *record, f sortField, scratch *[]byte) cursor {
	c := cursor{field: f, id: rec.id}
	switch f {
	case sortCreated:
		c.num = rec.created
	case sortUpdated:
		c.num = rec.updated
	case sortEmail:
		b, _ := appendEmail((*scratch)[:0], rec)
		*scratch = b
		c.str = string(b)
	}
	return c
}

// compareKey orders a record against a position, ascending; ties on the
// sort key break by id. Null e-mails sort as "", i.e. first.
func compareKey(rec *record, c *cursor, scratch *[]byte) int {
	switch c.field {
	case sortCreated, sortUpdated:
		v := rec.created
		if c.field == sortUpdated {
			v = rec.updated
		}
		if v != c.num {
			if v < c.num {
				return -1
			}
			return 1
		}
	case sortEmail:
		b, _ := appendEmail((*scratch)[:0], rec)
		*scratch = b
		if d := bytes.Compare(b, []byte(c.str)); d != 0 {
			return d
		}
	}
	return bytes.Compare(rec.id[:], c.id[:])
}
