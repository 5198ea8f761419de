package dcap_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/dcap/dcaptest"
	"github.com/magesgx/mage/tdx"
)

// TestTDQuote: go-tdx-guest's two real TD quotes parse (version 4, TEE
// type TDX), re-encode to their bytes, and verify to the Intel root by
// their signatures; a changed TD body fails the quote signature; SGX and
// TD quotes are not taken for each other; and the RTMRs of the COS quote
// are the ones its event log replays to; no collateral source takes one
// for an SGX quote.
func TestTDQuote(t *testing.T) {
	sgxQuote, err := os.ReadFile("testdata/phala-dcap-qvl/sgx_quote")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dcap.ParseTDQuote(sgxQuote); !errors.Is(err, dcap.ErrFormat) {
		t.Errorf("an SGX quote as a TD quote: %v", err)
	}
	for _, name := range []string{"tdx_prod_quote_SPR_E4.dat", "ccel/cos-113-tdx-quote.dat"} {
		raw, err := os.ReadFile("../testdata/tdx/" + name)
		if err != nil {
			t.Fatal(err)
		}
		// A quote may sit in a larger buffer (the COS one is padded).
		q, err := dcap.ParseTDQuote(raw)
		if err != nil {
			if end := quoteEnd(raw); end > 0 {
				raw = raw[:end]
				q, err = dcap.ParseTDQuote(raw)
			}
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if q.TD == nil || q.Header.TEEType != dcap.TEETypeTDX {
			t.Fatalf("%s: no TD body", name)
		}
		if b, err := q.Marshal(); err != nil || !bytes.Equal(b, raw) {
			t.Errorf("%s: does not re-encode to its bytes: %v", name, err)
		}
		if _, err := dcap.ParseQuote(raw); !errors.Is(err, dcap.ErrFormat) {
			t.Errorf("%s: a TD quote parsed as an SGX quote: %v", name, err)
		}
		chain, err := q.PCKChain()
		if err != nil {
			t.Fatal(err)
		}
		at := chain[0].NotBefore.Add(24 * time.Hour)
		if _, _, err := q.VerifySignatures(dcap.IntelRootCA(), nil, at); err != nil {
			t.Errorf("%s: signatures to the Intel root at %s: %v", name, at, err)
		}
		// No SGX collateral is fetched for it, cached or not: its TCB
		// Info is asked of the TDX API (which this server lacks).
		srv := dcaptest.NewServer(&dcap.Collateral{}, "00806F050000")
		pcs := &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}
		for _, src := range []dcap.CollateralSource{pcs, &dcap.Cache{PCS: pcs, Dir: t.TempDir()}} {
			if _, err := src.Collateral(context.Background(), q); !errors.Is(err, dcap.ErrFetch) {
				t.Errorf("%s: collateral from %T: %v, want ErrFetch", name, src, err)
			}
		}
		if r := srv.Requests(); r["/tcb"] != 0 || r["/qe/identity"] != 0 || r["/tdx/certification/v4/tcb"] == 0 {
			t.Errorf("%s: requests %v", name, r)
		}
		srv.Close()
		bad := bytes.Clone(raw)
		bad[48+136] ^= 1 // in MRTD
		qb, _ := dcap.ParseTDQuote(bad)
		if _, _, err := qb.VerifySignatures(dcap.IntelRootCA(), nil, at); !errors.Is(err, dcap.ErrQuoteSig) {
			t.Errorf("%s: a changed MRTD: %v", name, err)
		}
		if name == "ccel/cos-113-tdx-quote.dat" {
			log, err := os.ReadFile("../testdata/tdx/ccel/ccel_data.dat")
			if err != nil {
				t.Fatal(err)
			}
			events, err := tdx.ParseEventLog(log)
			if err != nil {
				t.Fatal(err)
			}
			rtmrs, _ := tdx.ReplayRTMRs(events)
			if rtmrs != q.TD.RTMR {
				t.Errorf("the quote's RTMRs are not its event log's")
			}
		}
	}
}

// quoteEnd is the length of the quote at the start of b: header, body,
// then the signature data whose length it records.
func quoteEnd(b []byte) int {
	const at = dcap.HeaderSize + dcap.TDReportBodySize
	if len(b) < at+4 {
		return 0
	}
	n := int(uint32(b[at]) | uint32(b[at+1])<<8 | uint32(b[at+2])<<16 | uint32(b[at+3])<<24)
	if at+4+n > len(b) {
		return 0
	}
	return at + 4 + n
}

// TestTDReportBodyMarshal: a TD body encodes back to the bytes it was
// parsed from, and a body built from its fields encodes the same.
func TestTDReportBodyMarshal(t *testing.T) {
	raw, err := os.ReadFile("../testdata/tdx/tdx_prod_quote_SPR_E4.dat")
	if err != nil {
		t.Fatal(err)
	}
	q, err := dcap.ParseTDQuote(raw[:quoteEnd(raw)])
	if err != nil {
		t.Fatal(err)
	}
	body := raw[dcap.HeaderSize : dcap.HeaderSize+dcap.TDReportBodySize]
	built := dcap.TDReportBody{TEETCBSVN: q.TD.TEETCBSVN, MRSEAM: q.TD.MRSEAM, MRSignerSEAM: q.TD.MRSignerSEAM, SEAMAttributes: q.TD.SEAMAttributes,
		TDAttributes: q.TD.TDAttributes, XFAM: q.TD.XFAM, MRTD: q.TD.MRTD, MRConfigID: q.TD.MRConfigID, MROwner: q.TD.MROwner,
		MROwnerConfig: q.TD.MROwnerConfig, RTMR: q.TD.RTMR, ReportData: q.TD.ReportData}
	if !bytes.Equal(q.TD.Marshal(), body) || !bytes.Equal(built.Marshal(), body) {
		t.Fatal("a TD report body does not survive its encoding")
	}
}
