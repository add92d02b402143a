//go:build goexperiment.jsonv2

package transform

import jsonv2 "encoding/json/v2"

// jsonv2Decoders adds encoding/json/v2 to the benchmark when built with
// GOEXPERIMENT=jsonv2.
var jsonv2Decoders = []libDecoder{{name: "encoding-json-v2", unmarshal: func(d []byte, v any) error {
	return jsonv2.Unmarshal(d, v)
}}}
