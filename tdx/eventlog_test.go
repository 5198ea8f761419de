package tdx

import (
	"bytes"
	"os"
	"testing"
)

// tdQuoteRTMRs reads RTMR0 to RTMR3 from a TDX quote of version 4: the
// 48-byte header, then the TD report body, whose RTMRs start at 328.
func tdQuoteRTMRs(t *testing.T, q []byte) [4][48]byte {
	var r [4][48]byte
	if len(q) < 48+584 || q[0] != 4 || q[4] != 0x81 {
		t.Fatalf("not a version-4 TDX quote")
	}
	for i := range r {
		copy(r[i][:], q[48+328+48*i:])
	}
	return r
}

// TestReplayRealEventLog: the event log of a real TD (Container-Optimized
// OS 113 on TDX, go-tdx-guest's test data) replays to the RTMRs of the
// quote that TD produced.
func TestReplayRealEventLog(t *testing.T) {
	log, err := os.ReadFile("../testdata/tdx/ccel/ccel_data.dat")
	if err != nil {
		t.Fatal(err)
	}
	quote, err := os.ReadFile("../testdata/tdx/ccel/cos-113-tdx-quote.dat")
	if err != nil {
		t.Fatal(err)
	}
	events, err := ParseEventLog(log)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReplayRTMRs(events)
	if err != nil {
		t.Fatal(err)
	}
	want := tdQuoteRTMRs(t, quote)
	n := 0
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("RTMR%d: replayed %x, the quote has %x", i, got[i], want[i])
		}
		if got[i] != [48]byte{} {
			n++
		}
	}
	t.Logf("%d events, %d non-zero RTMRs replayed", len(events), n)
	if n < 2 {
		t.Errorf("only %d RTMRs carry measurements", n)
	}
	// A changed event digest changes the replay.
	events[len(events)/2].Digest[0] ^= 1
	if again, _ := ReplayRTMRs(events); again == got {
		t.Error("a changed digest replays to the same RTMRs")
	}
}

// FuzzParseEventLog: any log parses or is refused, without a panic.
func FuzzParseEventLog(f *testing.F) {
	log, err := os.ReadFile("../testdata/tdx/ccel/ccel_data.dat")
	if err != nil {
		f.Fatal(err)
	}
	end := bytes.Index(log, bytes.Repeat([]byte{0xff}, 64))
	f.Add(log[:end])
	f.Fuzz(func(t *testing.T, b []byte) {
		if ev, err := ParseEventLog(b); err == nil {
			ReplayRTMRs(ev)
		}
	})
}
