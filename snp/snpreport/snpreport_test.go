package snpreport

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-sev-guest/kds"
)

// The real report of go-sev-guest's testdata: a Milan guest launched
// without an ID block, and its chip's VCEK (testdata/snp/README.md).
func realReport(t testing.TB) (report, vcek []byte) {
	t.Helper()
	var err error
	if report, err = os.ReadFile("../../testdata/snp/attestation.bin"); err != nil {
		t.Fatal(err)
	}
	if vcek, err = os.ReadFile("../../testdata/snp/vcek.der"); err != nil {
		t.Fatal(err)
	}
	return report, vcek
}

// at is a time within the VCEK's validity (2022-09-24 to 2029-09-24).
func at() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }

// certTable builds an extended report's certificate table.
func certTable(entries map[string][]byte) []byte {
	hdr := 24 * (len(entries) + 1)
	var head, body []byte
	for g, c := range entries {
		id := guidOf(g)
		head = append(head, id[:]...)
		head = binary.LittleEndian.AppendUint32(head, uint32(hdr+len(body)))
		head = binary.LittleEndian.AppendUint32(head, uint32(len(c)))
		body = append(body, c...)
	}
	return append(append(head, make([]byte, 24)...), body...)
}

func guidOf(s string) [16]byte {
	switch s {
	case "vcek":
		return guidVCEK
	case "vlek":
		return guidVLEK
	}
	var g [16]byte
	copy(g[:], s)
	return g
}

// TestRealReport: the real report verifies with its VCEK sent beside it,
// from an offline bundle, or fetched from the KDS, with the expected
// fields.
func TestRealReport(t *testing.T) {
	report, vcek := realReport(t)
	wantMeasurement := hex.EncodeToString(report[0x90:0xc0]) // MEASUREMENT, at 0x90
	check := func(name string, r *Report, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if hex.EncodeToString(r.Measurement[:]) != wantMeasurement || r.ProductLine != "Milan" || r.Signer != "VCEK" || !r.Debug || r.Version != 2 || r.Policy != 0xb0000 {
			t.Errorf("%s: %+v", name, r)
		}
	}
	// The guest was launched with a debug policy: its report verifies,
	// and is refused unless debug guests are admitted.
	if _, err := (&Verifier{Now: at}).Verify(context.Background(), Evidence{Report: report, CertTable: certTable(map[string][]byte{"vcek": vcek})}); !errors.Is(err, ErrReport) || !strings.Contains(err.Error(), "allows debugging") {
		t.Fatalf("a debug guest's report: %v", err)
	}
	v := &Verifier{Now: at, InsecureAllowDebug: true}
	r, err := v.Verify(context.Background(), Evidence{Report: report, CertTable: certTable(map[string][]byte{"vcek": vcek})})
	check("sent", r, err)
	r, err = (&Verifier{Now: at, VCEKs: [][]byte{vcek}, InsecureAllowDebug: true}).Verify(context.Background(), Evidence{Report: report})
	check("offline bundle", r, err)

	kdsClient := &fakeKDS{certs: map[string][]byte{}}
	url := kds.VCEKCertURL("Milan", report[0x1a0:0x1e0], kds.TCBVersion(binary.LittleEndian.Uint64(report[0x180:])))
	kdsClient.certs[url] = vcek
	v = &Verifier{Now: at, KDS: &KDS{Client: kdsClient}, ProductLine: "Milan", InsecureAllowDebug: true}
	for range 3 {
		r, err = v.Verify(context.Background(), Evidence{Report: report})
		check("KDS", r, err)
	}
	if n := kdsClient.requests.Load(); n != 1 {
		t.Errorf("%d requests to the KDS for three verifications, want 1 (the VCEK is kept once it verified)", n)
	}
	if _, err := (&Verifier{Now: at, KDS: &KDS{Client: kdsClient}}).Verify(context.Background(), Evidence{Report: report}); !errors.Is(err, ErrReport) || !strings.Contains(err.Error(), "ProductLine") {
		t.Errorf("a version-2 report with no product line: %v", err)
	}
	if _, err := (&Verifier{Now: at}).Verify(context.Background(), Evidence{Report: report}); !errors.Is(err, ErrReport) {
		t.Errorf("no certificate anywhere: %v", err)
	}
}

// TestRealReportOneBit: one flipped bit anywhere in the report, or in the
// VCEK, fails verification; so does a time outside the VCEK's validity.
func TestRealReportOneBit(t *testing.T) {
	report, vcek := realReport(t)
	v := &Verifier{Now: at, InsecureAllowDebug: true}
	for i := range report {
		bad := bytes.Clone(report)
		bad[i] ^= 1 << (i % 8)
		if _, err := v.Verify(context.Background(), Evidence{Report: bad, CertTable: certTable(map[string][]byte{"vcek": vcek})}); err == nil {
			t.Fatalf("report with bit %d of byte %#x flipped verifies", i%8, i)
		}
	}
	for i := 0; i < len(vcek); i += 7 {
		bad := bytes.Clone(vcek)
		bad[i] ^= 0x10
		if _, err := v.Verify(context.Background(), Evidence{Report: report, CertTable: certTable(map[string][]byte{"vcek": bad})}); err == nil {
			t.Fatalf("VCEK with byte %d changed verifies", i)
		}
	}
	late := &Verifier{Now: func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }, InsecureAllowDebug: true}
	if _, err := late.Verify(context.Background(), Evidence{Report: report, CertTable: certTable(map[string][]byte{"vcek": vcek})}); err == nil {
		t.Error("the report verifies after its VCEK expired")
	}
}

// TestHostileCertTables: certificate tables that lie about their entries
// are refused with ErrReport, never a panic.
func TestHostileCertTables(t *testing.T) {
	_, vcek := realReport(t)
	good := certTable(map[string][]byte{"vcek": vcek, "other-cert-guid1": []byte("x")})
	if c, err := EndorsementCert(good); err != nil || !bytes.Equal(c, vcek) {
		t.Fatalf("a good table: %v", err)
	}
	overflow := bytes.Clone(good)
	for i := 0; i < 2; i++ {
		if [16]byte(overflow[24*i:]) == guidVCEK {
			binary.LittleEndian.PutUint32(overflow[24*i+16:], 0xfffffff0)
			binary.LittleEndian.PutUint32(overflow[24*i+20:], 0x20)
		}
	}
	inHeader := bytes.Clone(good)
	binary.LittleEndian.PutUint32(inHeader[16:], 8)
	for name, table := range map[string][]byte{
		"truncated":         good[:30],
		"no end":            bytes.Repeat([]byte{1}, 24*20),
		"offset overflow":   overflow,
		"offset in header":  inHeader,
		"two VCEKs":         append(append(append([]byte{}, guidVCEK[:]...), 72, 0, 0, 0, 1, 0, 0, 0), append(append(guidVCEK[:], 72, 0, 0, 0, 1, 0, 0, 0), make([]byte, 25)...)...),
		"too large":         make([]byte, MaxCertTable+1),
		"empty certificate": certTable(map[string][]byte{"vcek": nil}),
	} {
		if _, err := EndorsementCert(table); !errors.Is(err, ErrReport) {
			t.Errorf("%s: %v", name, err)
		}
	}
	report, _ := realReport(t)
	for _, n := range []int{0, 100, ReportSize - 1, ReportSize + 1} {
		if _, err := (&Verifier{Now: at}).Verify(context.Background(), Evidence{Report: make([]byte, n)}); !errors.Is(err, ErrReport) {
			t.Errorf("a report of %d bytes: %v", n, err)
		}
	}
	if _, err := (&Verifier{Now: at}).Verify(context.Background(), Evidence{Report: report, CertTable: overflow}); !errors.Is(err, ErrReport) {
		t.Errorf("a report with a hostile table: %v", err)
	}
}

// TestKDSBounded: hostile reports naming chips the KDS does not know make
// one request at a time, and a failed URL is not asked again until
// RetryFailuresAfter.
func TestKDSBounded(t *testing.T) {
	report, _ := realReport(t)
	client := &fakeKDS{certs: map[string][]byte{}, delay: 5 * time.Millisecond}
	v := &Verifier{Now: at, KDS: &KDS{Client: client, RetryFailuresAfter: time.Hour}, ProductLine: "Milan"}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			bad := bytes.Clone(report)
			bad[0x1a0] = byte(i % 4) // four chips, ten reports each
			if _, err := v.Verify(context.Background(), Evidence{Report: bad}); !errors.Is(err, ErrFetch) {
				t.Errorf("an unknown chip: %v", err)
			}
		})
	}
	wg.Wait()
	if m := client.max.Load(); m != 1 {
		t.Errorf("%d requests at once to the KDS", m)
	}
	if n := client.requests.Load(); n < 4 || n > 40 {
		t.Errorf("%d requests for 40 reports of 4 chips", n)
	}
	before := client.requests.Load()
	for i := range 4 {
		bad := bytes.Clone(report)
		bad[0x1a0] = byte(i)
		v.Verify(context.Background(), Evidence{Report: bad})
	}
	if n := client.requests.Load(); n != before {
		t.Errorf("%d more requests for chips that just failed", n-before)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	bad := bytes.Clone(report)
	bad[0x1a0] = 9
	if _, err := v.Verify(ctx, Evidence{Report: bad}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled verification: %v", err)
	}
}

// fakeKDS answers VCEK requests from a map, counting them.
type fakeKDS struct {
	certs              map[string][]byte
	delay              time.Duration
	requests, inflight atomic.Int32
	max                atomic.Int32
}

func (f *fakeKDS) Do(r *http.Request) (*http.Response, error) {
	f.requests.Add(1)
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for m := f.max.Load(); n > m && !f.max.CompareAndSwap(m, n); m = f.max.Load() {
	}
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	time.Sleep(f.delay)
	c, ok := f.certs[r.URL.String()]
	if !ok {
		return &http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found", Body: io.NopCloser(strings.NewReader(""))}, nil
	}
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Body: io.NopCloser(bytes.NewReader(c))}, nil
}

// FuzzEndorsementCert: no certificate table panics or escapes its bounds.
func FuzzEndorsementCert(f *testing.F) {
	_, vcek := realReport(f)
	f.Add(certTable(map[string][]byte{"vcek": vcek}))
	f.Add(certTable(map[string][]byte{"vlek": []byte("abc"), "other-cert-guid1": []byte("x")}))
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, table []byte) {
		c, err := EndorsementCert(table)
		if err == nil && len(c) > maxCert {
			t.Fatalf("a certificate of %d bytes", len(c))
		}
	})
}

// FuzzVerify: no report, with any certificate table, panics.
func FuzzVerify(f *testing.F) {
	report, vcek := realReport(f)
	f.Add(report, certTable(map[string][]byte{"vcek": vcek}))
	f.Add(report[:100], []byte(nil))
	v := &Verifier{Now: at}
	f.Fuzz(func(t *testing.T, report, table []byte) {
		v.Verify(context.Background(), Evidence{Report: report, CertTable: table})
	})
}

// TestVCEKDir: a VCEK fetched once and verified is kept in Dir: a
// restarted verifier uses it without the KDS; a file planted there that is
// not the chip's VCEK is only a failed candidate, fetched over.
func TestVCEKDir(t *testing.T) {
	report, vcek := realReport(t)
	dir := t.TempDir()
	url := kds.VCEKCertURL("Milan", report[0x1a0:0x1e0], kds.TCBVersion(binary.LittleEndian.Uint64(report[0x180:])))
	client := &fakeKDS{certs: map[string][]byte{url: vcek}}
	mk := func() *Verifier {
		return &Verifier{Now: at, KDS: &KDS{Client: client}, ProductLine: "Milan", InsecureAllowDebug: true, Dir: dir}
	}
	if _, err := mk().Verify(context.Background(), Evidence{Report: report}); err != nil {
		t.Fatal(err)
	}
	if _, err := mk().Verify(context.Background(), Evidence{Report: report}); err != nil || client.requests.Load() != 1 {
		t.Fatalf("a restarted verifier: %v, %d requests to the KDS", err, client.requests.Load())
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Fatalf("%d files kept", len(files))
	}
	p := dir + "/" + files[0].Name()
	os.WriteFile(p, []byte("planted"), 0o644)
	if _, err := mk().Verify(context.Background(), Evidence{Report: report}); err != nil || client.requests.Load() != 2 {
		t.Fatalf("a planted file: %v, %d requests", err, client.requests.Load())
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, vcek) {
		t.Error("the planted file was not replaced by the verified VCEK")
	}
}
