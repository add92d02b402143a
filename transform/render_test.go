package transform

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// render writes records as stable text: per table a header line, then one
// JSON object per row with the columns in schema order. Timestamps are
// RFC 3339 UTC, doubles in Go's shortest form, JSON columns as their exact
// text (a JSON string), bytes as text when valid UTF-8 and "base64:…"
// otherwise.
func render(recs Records) string {
	var sb strings.Builder
	for _, t := range []struct {
		name string
		rec  arrow.RecordBatch
	}{{"profiles", recs.Profiles}, {"profile_relationships", recs.Relationships}, {"profile_rejects", recs.Rejects}} {
		sb.WriteString("# " + t.name + " (" + strconv.FormatInt(t.rec.NumRows(), 10) + " rows)\n")
		for r := 0; r < int(t.rec.NumRows()); r++ {
			sb.WriteString("{")
			for c := 0; c < int(t.rec.NumCols()); c++ {
				if c > 0 {
					sb.WriteString(",")
				}
				sb.WriteString(strconv.Quote(t.rec.ColumnName(c)) + ":" + cell(t.rec.Column(c), r))
			}
			sb.WriteString("}\n")
		}
	}
	return sb.String()
}

func cell(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "null"
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	switch a := a.(type) {
	case *array.String:
		return q(a.Value(i))
	case *array.Binary:
		v := a.Value(i)
		if utf8.Valid(v) {
			return q(string(v))
		}
		return q("base64:" + base64.StdEncoding.EncodeToString(v))
	case *array.Timestamp:
		return q(time.UnixMicro(int64(a.Value(i))).UTC().Format(time.RFC3339Nano))
	case *array.Float64:
		return strconv.FormatFloat(a.Value(i), 'g', -1, 64)
	case array.ExtensionArray:
		return q(a.Storage().(*array.String).Value(i))
	default:
		return q(a.ValueStr(i))
	}
}
