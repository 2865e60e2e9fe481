package codectest

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sampleEverything(t testing.TB) Everything {
	t.Helper()
	n := int64(-42)
	when := time.Date(1999, 12, 31, 23, 59, 59, 1, time.FixedZone("", -7*3600))
	return Everything{
		B: true, I: -1 << 40, I8: -128, I16: 300, I32: -70000, I64: math.MinInt64,
		U: 1 << 50, U8: 255, U16: 65535, U32: 1 << 31, U64: math.MaxUint64,
		F32: float32(math.Inf(-1)), F64: math.NaN(), S: "héllo, wörld",
		Bytes: []byte{}, T: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Ref: wireRef("ep", ""),
		Lvl: -3, PI: &n, PT: &when,
		Inner:   Inner{N: 1, Name: "a", Next: &Inner{N: 2}},
		Inners:  []Inner{{N: 5}, {Name: "x"}},
		PInners: []*Inner{nil, {N: 7}},
		Strs:    []string{},
		ByInt:   map[int]string{-1: "minus one", 0: "zero", 24: "twenty-four", -25: "x", 1000: "k"},
		ByU16:   map[uint16]*Inner{1: nil, 300: {Name: "deep"}},
		Floats:  map[string][]float32{"a": {1.5, float32(math.NaN())}, "a-much-longer-key-than-24-bytes": nil},
		Renamed: "r", JSON: "j", Skipped: "never sent", Dur: 3 * time.Second,
	}
}

func TestGeneratedEncodingIsTheLibrarys(t *testing.T) {
	for name, v := range map[string]appender{
		"LaunchTask":          Launch(),
		"Flat":                Flat{ID: 7, Name: "n", Data: []byte("data"), OK: true, Score: 0.25, Count: 9},
		"Flat zero":           Flat{},
		"Everything":          sampleEverything(t),
		"Everything zero":     Everything{},
		"Inner, self-nesting": Inner{Next: &Inner{Next: &Inner{N: 3}}},
	} {
		want, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustAppend(t, v); !bytes.Equal(got, want) {
			t.Errorf("%s: AppendRPC wrote\n%x\nthe library writes\n%x", name, got, want)
		}
	}
}

// same reports whether a and b are the same value, by their canonical
// encoding (which treats every NaN alike, and times by their text).
func same(t testing.TB, a, b any) bool {
	t.Helper()
	x, err := encMode.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := encMode.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

func TestGeneratedDecodingIsTheLibrarys(t *testing.T) {
	check := func(name string, v any, lib any, gen interface{ DecodeRPC([]byte) bool }) {
		data, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := decMode.Unmarshal(data, lib); err != nil {
			t.Fatal(err)
		}
		if !gen.DecodeRPC(data) {
			t.Fatalf("%s: DecodeRPC refused what AppendRPC writes: %x", name, data)
		}
		if !same(t, lib, gen) {
			t.Errorf("%s: DecodeRPC and the library decode %x differently", name, data)
		}
	}
	check("LaunchTask", Launch(), new(LaunchTask), new(LaunchTask))
	check("Everything", sampleEverything(t), new(Everything), new(Everything))
	check("Everything zero", Everything{}, new(Everything), new(Everything))
	check("Flat", Flat{ID: -1, Data: []byte{}}, new(Flat), new(Flat))
}

// Layouts the library accepts but AppendRPC never writes are refused by
// DecodeRPC (core then decodes them with the library), never misread.
func TestGeneratedDecodingRefusesOtherLayouts(t *testing.T) {
	// Inner{} is {"N": 0, "Name": "", "Next": null}: a3 614e00 644e616d6560 644e657874f6.
	if got := mustHex(t, "a3614e00644e616d6560644e657874f6"); !bytes.Equal(mustAppend(t, Inner{}), got) {
		t.Fatalf("Inner{} encodes as %x, not %x: the cases below are stale", mustAppend(t, Inner{}), got)
	}
	for name, data := range map[string][]byte{
		"keys in another order": mustHex(t, "a3644e616d6560614e00644e657874f6"),
		"a key in another case": mustHex(t, "a3616e00644e616d6560644e657874f6"),
		"an unknown key":        mustHex(t, "a4614e00644e616d6560644e657874f66158f5"),
		"a missing key":         mustHex(t, "a2614e00644e616d6560"),
		"an array":              mustHex(t, "80"),
		"trailing bytes":        mustHex(t, "a3614e00644e616d6560644e657874f600"),
		"truncated":             mustHex(t, "a3614e00644e616d65"),
	} {
		if new(Inner).DecodeRPC(data) {
			t.Errorf("%s: DecodeRPC accepted %x", name, data)
		}
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				v |= byte(c - 'a' + 10)
			default:
				t.Fatalf("bad hex %q", s)
			}
		}
		b[i] = v
	}
	return b
}

// appender is what rpcgen generates on a message type.
type appender interface {
	AppendRPC(b []byte) ([]byte, error)
}

func mustAppend(t testing.TB, v appender) []byte {
	t.Helper()
	b, err := v.AppendRPC(nil)
	if err != nil {
		t.Fatalf("AppendRPC(%+v): %v", v, err)
	}
	return b
}

// A time the library refuses to encode fails AppendRPC too, wherever it
// is, so that core lets the library encode it, and report its error.
func TestATimeTheLibraryRefusesFailsAppendRPC(t *testing.T) {
	bad := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, v := range map[string]appender{
		"a field":        Everything{T: bad},
		"a pointer":      Everything{PT: &bad},
		"a nested field": LaunchTask{Sent: bad},
	} {
		if _, err := encMode.Marshal(v); err == nil {
			t.Fatalf("%s: the library encodes a time in year 10000", name)
		}
		if _, err := v.AppendRPC(nil); err == nil {
			t.Errorf("%s: AppendRPC encoded a time in year 10000", name)
		}
	}
}

func TestATypeWithOmitemptyKeepsTheLibrarysCodec(t *testing.T) {
	if _, ok := any(Tagged{}).(appender); ok {
		t.Fatal("Tagged has AppendRPC: omitempty would be encoded wrongly")
	}
}

// values builds an Everything from fuzz input: each field takes the next
// bytes.
type values struct{ b []byte }

func (v *values) u64() uint64 {
	var x [8]byte
	n := copy(x[:], v.b)
	v.b = v.b[n:]
	return binary.LittleEndian.Uint64(x[:])
}

func (v *values) str() string {
	n := int(v.u64() % 40)
	n = min(n, len(v.b))
	s := string(v.b[:n]) // may be invalid UTF-8: both codecs write it as is
	v.b = v.b[n:]
	return s
}

func (v *values) everything(depth int) Everything {
	var e Everything
	e.B = v.u64()&1 == 1
	e.I, e.I8, e.I16, e.I32, e.I64 = int(v.u64()), int8(v.u64()), int16(v.u64()), int32(v.u64()), int64(v.u64())
	e.U, e.U8, e.U16, e.U32, e.U64 = uint(v.u64()), uint8(v.u64()), uint16(v.u64()), uint32(v.u64()), v.u64()
	e.F32, e.F64 = math.Float32frombits(uint32(v.u64())), math.Float64frombits(v.u64())
	e.S = v.str()
	if x := v.u64(); x%3 == 1 {
		e.Bytes = []byte(v.str())
	} else if x%3 == 2 {
		e.Bytes = []byte{}
	}
	if x := v.u64(); x%2 == 1 {
		e.T = time.Unix(int64(x%(1<<36)), int64(v.u64()%1e9)).In(time.FixedZone("", int(v.u64()%1440-720)*60))
	}
	e.Lvl = Level(v.u64())
	if x := v.u64(); x%2 == 1 {
		n := int64(x)
		e.PI = &n
	}
	e.Inner = Inner{N: int32(v.u64()), Name: v.str()}
	if depth < 2 && v.u64()%2 == 1 {
		e.Inner.Next = &Inner{N: int32(v.u64())}
	}
	for range v.u64() % 4 {
		e.Inners = append(e.Inners, Inner{N: int32(v.u64())})
	}
	if x := v.u64() % 5; x > 0 {
		e.ByInt = map[int]string{}
		for range x {
			e.ByInt[int(int16(v.u64()))] = v.str()
		}
	}
	if x := v.u64() % 5; x > 0 {
		e.Floats = map[string][]float32{}
		for range x {
			e.Floats[v.str()] = []float32{math.Float32frombits(uint32(v.u64()))}
		}
	}
	e.Renamed, e.JSON = v.str(), v.str()
	e.Dur = time.Duration(v.u64())
	return e
}

// FuzzGeneratedCodec: AppendRPC writes the library's bytes for values
// built from the input; DecodeRPC reads them back as the library does;
// and any input DecodeRPC accepts, the library decodes to the same value.
func FuzzGeneratedCodec(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff, 0x01, 0x80, 0x7f}, 64))
	f.Add(mustAppend(f, sampleEverything(f)))
	f.Add(mustAppend(f, Flat{Name: "x"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		v := (&values{b: data}).everything(0)
		want, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustAppend(t, v); !bytes.Equal(got, want) {
			t.Fatalf("AppendRPC wrote\n%x\nthe library writes\n%x", got, want)
		}
		var lib, gen Everything
		libErr := decMode.Unmarshal(want, &lib)
		if gen.DecodeRPC(want) {
			if libErr != nil {
				t.Fatalf("DecodeRPC accepted %x, which the library refuses: %v", want, libErr)
			}
			if !same(t, lib, gen) {
				t.Fatalf("DecodeRPC and the library decode %x differently", want)
			}
		} else if libErr == nil && validUTF8(v) {
			t.Fatalf("DecodeRPC refused what AppendRPC wrote: %x", want)
		}

		// The raw input as a body.
		var lib2, gen2 Everything
		if gen2.DecodeRPC(data) {
			if err := decMode.Unmarshal(data, &lib2); err != nil {
				t.Fatalf("DecodeRPC accepted %x, which the library refuses: %v", data, err)
			}
			if !same(t, lib2, gen2) {
				t.Fatalf("DecodeRPC and the library decode %x differently", data)
			}
		}
		var flat Flat
		if flat.DecodeRPC(data) {
			var libFlat Flat
			if err := decMode.Unmarshal(data, &libFlat); err != nil || !same(t, libFlat, flat) {
				t.Fatalf("Flat: DecodeRPC accepted %x; the library: %v", data, err)
			}
		}
	})
}

// validUTF8 reports whether every string of v is valid UTF-8: the
// library writes invalid strings as they are, and refuses them when
// decoding, so DecodeRPC must refuse them too.
func validUTF8(v Everything) bool {
	b, _ := encMode.Marshal(v)
	var any2 any
	return decMode.Unmarshal(b, &any2) == nil
}
