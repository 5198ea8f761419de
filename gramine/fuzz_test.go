package gramine

import (
	"testing"
)

func FuzzParseManifest(f *testing.F) {
	f.Add(read(f, "single/d4_env_trusted_64M/d4_env_trusted_64M.manifest.sgx"))
	f.Add(read(f, "group/alice.manifest.sgx"))
	f.Add([]byte("sgx.enclave_size = \"0x10000\"\nsgx.max_threads = 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		if m.EnclaveSize&(m.EnclaveSize-1) != 0 || m.MaxThreads < 1 || m.MaxThreads > MaxThreads {
			t.Fatalf("accepted size %#x, %d threads", m.EnclaveSize, m.MaxThreads)
		}
	})
}

func FuzzParseLibpal(f *testing.F) {
	f.Add(read(f, "fakepal.so"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseLibpal(b)
		if err != nil {
			return
		}
		if p.Span == 0 || p.Span > maxLibpalSpan {
			t.Fatalf("accepted a span of %#x", p.Span)
		}
		// Measuring it must stay within the file and the layout.
		l, err := NewLayout(1<<28, 1, false, 100, p.Span)
		if err == nil {
			l.SuffixBytes(p)
		}
	})
}
