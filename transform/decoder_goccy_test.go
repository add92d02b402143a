package transform

import goccy "github.com/goccy/go-json"

var goccyDecoder = libDecoder{name: "goccy-go-json", unmarshal: goccy.Unmarshal}
