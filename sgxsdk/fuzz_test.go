package sgxsdk

import (
	"bytes"
	"context"
	"testing"
)

func FuzzParseELF(f *testing.F) {
	for _, p := range []string{"enclaves/e1_small.so", "enclaves/e2_tls_big.so", "enclaves/g1_m0.so", "signed/s6_e6_cF.signed.so"} {
		f.Add(read(f, p))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		e, err := ParseELF(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("ParseELF modified its input")
		}
		if err != nil {
			return
		}
		_ = e.MageSection()
		_ = e.TextRelocations()
		// A file that parses must either be refused or measured without
		// panicking, under the default config.
		if im, err := Prepare(b, nil, &Options{IgnoreRelError: true, IgnoreInitSecError: true}); err == nil {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // do not spend fuzzing time hashing huge layouts
			im.MeasureContext(ctx)
		}
	})
}

func FuzzParseSigned(f *testing.F) {
	f.Add(read(f, "signed/s1_e1_cA.signed.so"))
	f.Add(read(f, "signed/s2_e2_cB.signed.so"))
	f.Add(read(f, "signed/g2_v9.signed.so"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSigned(b)
		if err != nil {
			return
		}
		var out bytes.Buffer
		s.Dump(&out)
		for _, m := range s.Metadata {
			m.Validate()
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s.Measure(ctx)
	})
}

func FuzzParseMetadata(f *testing.F) {
	for _, p := range []string{"signed/s1_e1_cA.signed.so", "signed/s6_e6_cF.signed.so", "signed/s2_e2_cB.signed.so"} {
		raw := read(f, p)
		s, err := ParseSigned(raw)
		if err != nil {
			f.Fatal(err)
		}
		off := s.ELF.MetadataOffset
		f.Add(raw[off : off+MetadataBlockSize])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMetadataBlock(b)
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Validate() == nil {
				// Layouts that validate stay inside the enclave.
				for _, l := range m.Layouts {
					if !l.IsGroup() && l.RVA >= m.EnclaveSize && l.PageCount > 0 {
						t.Fatalf("validated layout at %#x outside %#x", l.RVA, m.EnclaveSize)
					}
				}
			}
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	for _, p := range []string{"configs/cA_sample_default.config.xml", "configs/cB_threads_nodebug.config.xml", "configs/cF_edmm_dynamic.config.xml"} {
		f.Add(read(f, p))
	}
	f.Add([]byte("<EnclaveConfiguration><ProdID>0x10</ProdID></EnclaveConfiguration>"))
	f.Add([]byte("<EnclaveConfiguration><HeapMaxSize>010</HeapMaxSize></EnclaveConfiguration>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if err := c.Check(); err != nil {
			t.Fatalf("parsed config fails Check: %v", err)
		}
	})
}
