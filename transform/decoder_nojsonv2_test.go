//go:build !goexperiment.jsonv2

package transform

var jsonv2Decoders []libDecoder
