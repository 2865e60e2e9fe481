// Package cborgen is the runtime of the CBOR codecs that rpcgen generates
// for message structs. Generated code appends and parses the exact bytes
// with these helpers, without reflection. It is not meant for direct use:
// the contracts below only hold for the calls the generator emits.
//
// # Encoding
//
// The Append functions write bytes identical to those that
// github.com/fxamacker/cbor/v2 (v2.10.0) writes for the same Go value with
//
//	cbor.EncOptions{
//		Time:        cbor.TimeRFC3339Nano,
//		IndefLength: cbor.IndefLengthForbidden,
//		Sort:        cbor.SortBytewiseLexical,
//	}
//
// and the defaults for every other option: shortest integer heads, float32
// and float64 kept at their width (ShortestFloatNone), every NaN written as
// the half float 0x7e00, infinities as half floats, nil byte slices, slices
// and maps written as null, map entries sorted by the bytes of their
// encoded keys, a zero time.Time written as null and any other as an
// RFC 3339 text string with nanoseconds, and a tag (a Marshaler's, such as
// core's ref) as its head in shortest form before its content
// ([AppendTagHead]). The library refuses to encode a
// time whose RFC 3339 form has a year outside 0-9999 or a UTC offset of
// 24 hours or more; [AppendTime] then returns an error and appends
// nothing.
//
// # Decoding
//
// A [Reader] is a fast path that accepts a subset of what the library
// accepts with
//
//	cbor.DecOptions{
//		MaxNestedLevels:  32,
//		MaxArrayElements: 1 << 20,
//		MaxMapPairs:      1 << 20,
//		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
//		IndefLength:      cbor.IndefLengthForbidden,
//	}
//
// Whenever [Reader.Done] reports true after a value was read, the library
// decodes the same bytes into the same Go type without error and to an
// equal value. Anything else the Reader meets (tags other than the one
// [Reader.Tag] expects, undefined, integers where floats are expected,
// indefinite lengths, keys out of the expected order, unknown keys,
// invalid UTF-8, truncation, ...) marks the Reader failed; the caller
// then decodes the whole input again with the library, which either
// accepts it or reports the error. So the Reader may refuse
// what the library accepts, but never accepts what the library would
// reject or decode differently.
//
// The Reader never panics on malformed input, and every length it reads is
// checked against the bytes left before anything is allocated.
//
// Decoded strings and byte strings are copies, as the library makes them,
// unless the caller gives the input away with [Reader.Share]: large byte
// strings are then slices of the input. core does that for a message that
// arrived in chunks, whose reassembled frame nothing else uses.
package cborgen
