package sim

import (
	"bytes"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/sgx"
)

const vectors = "../testdata/sgxsdk"

func read(t testing.TB, p string) []byte {
	b, err := os.ReadFile(filepath.Join(vectors, p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func platform(t testing.TB) *Platform {
	p, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t testing.TB, p *Platform, signed string, opts *LoadOptions) *Enclave {
	e, err := p.Load(t.Context(), read(t, signed), opts)
	if err != nil {
		t.Fatalf("%s: %v", signed, err)
	}
	return e
}

// TestLoadVectors loads every reference signed enclave through the loader
// path (metadata from the file, replay, EINIT) and checks its identity.
func TestLoadVectors(t *testing.T) {
	var m struct {
		Vectors []struct {
			ID       string `json:"id"`
			Signed   string `json:"signed"`
			Expected struct {
				MRENCLAVE string `json:"mrenclave"`
				MRSIGNER  string `json:"mrsigner_from_css_modulus"`
				ISVProdID uint16 `json:"isvprodid"`
				ISVSVN    uint16 `json:"isvsvn"`
			} `json:"expected"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(read(t, "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	p := platform(t)
	for _, v := range m.Vectors {
		e := load(t, p, v.Signed, nil)
		if e.MRENCLAVE.String() != v.Expected.MRENCLAVE || e.MRSIGNER.String() != v.Expected.MRSIGNER ||
			e.ISVProdID != v.Expected.ISVProdID || e.ISVSVN != v.Expected.ISVSVN {
			t.Errorf("%s: identity %+v", v.ID, e.Identity)
		}
		if e.Attributes.Flags&sgx.AttrInit == 0 || e.Attributes.Debug() {
			t.Errorf("%s: attributes %v", v.ID, e.Attributes)
		}
	}
	g := load(t, p, "signed/g1_v0.signed.so", nil)
	if !bytes.Equal(g.MageSection(), read(t, "mage/g1.sgx_mage_table.bin")) {
		t.Error("loaded .sgx_mage section differs from the group table")
	}
}

func TestEINITChecks(t *testing.T) {
	p := platform(t)
	base := read(t, "signed/g1_v1.signed.so")
	flip := func(off int) []byte {
		b := bytes.Clone(base)
		b[off] ^= 0x10
		return b
	}
	meta := bytes.Index(base, []byte("sgx_metadata\x00")) + 13
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"code page", flip(0x1010), "ENCLAVEHASH"},
		{".sgx_mage page", flip(0x3000 + 100), "ENCLAVEHASH"},
		{"metadata enclave size", flip(meta + 41), ""},
		{"metadata layout", flip(meta + 3728 + 8), ""},
		{"SIGSTRUCT date", flip(meta + 64 + 20), "SIGSTRUCT"},
		{"SIGSTRUCT modulus", flip(meta + 64 + 200), "SIGSTRUCT"},
		{"SIGSTRUCT q1", flip(meta + 64 + 1100), "q1"},
	}
	for _, c := range cases {
		_, err := p.Load(t.Context(), c.file, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
	// DEBUG launch: allowed for s1 (DisableDebug=0), refused for s2.
	if e := load(t, p, "signed/s1_e1_cA.signed.so", &LoadOptions{Debug: true}); !e.Attributes.Debug() {
		t.Error("debug launch without DEBUG")
	}
	if _, err := p.Load(t.Context(), read(t, "signed/s2_e2_cB.signed.so"), &LoadOptions{Debug: true}); !errors.Is(err, ErrEINIT) || !strings.Contains(err.Error(), "ATTRIBUTES") {
		t.Errorf("debug launch of a DisableDebug enclave: %v", err)
	}
	if _, err := p.Load(t.Context(), read(t, "enclaves/e1_small.so"), nil); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("unsigned file: %v", err)
	}
}

func TestReports(t *testing.T) {
	p := platform(t)
	a := load(t, p, "signed/g1_v0.signed.so", nil)
	b := load(t, p, "signed/g1_v1.signed.so", nil)
	c := load(t, p, "signed/g1_v2.signed.so", nil)
	var data [64]byte
	copy(data[:], "hello b")
	r, err := a.Report(b.TargetInfo(), data)
	if err != nil {
		t.Fatal(err)
	}
	body, err := b.VerifyReport(r)
	if err != nil {
		t.Fatal(err)
	}
	if body.MRENCLAVE != a.MRENCLAVE || body.ReportData != data {
		t.Fatal("verified body is not a's")
	}
	if _, err := c.VerifyReport(r); !errors.Is(err, ErrReportMAC) {
		t.Errorf("report for b verified by c: %v", err)
	}
	// Every byte of the report is covered.
	raw := r.Marshal()
	for i := range sgx.ReportSize {
		x := bytes.Clone(raw)
		x[i] ^= 1
		rr, _ := sgx.ParseReport(x)
		if _, err := b.VerifyReport(rr); err == nil {
			t.Fatalf("flip at %d accepted", i)
		}
	}
	// Another platform does not accept it.
	q := platform(t)
	b2 := load(t, q, "signed/g1_v1.signed.so", nil)
	if _, err := b2.VerifyReport(r); !errors.Is(err, ErrReportMAC) {
		t.Errorf("report verified on another platform: %v", err)
	}
	// Reserved TARGETINFO bytes are refused.
	ti := b.TargetInfo()
	ti.Reserved3[0] = 1
	if _, err := a.Report(ti, data); !errors.Is(err, ErrInvalidReserved) {
		t.Errorf("reserved TARGETINFO: %v", err)
	}
}

func TestSealKeys(t *testing.T) {
	p := platform(t)
	a := load(t, p, "signed/g2_v0.signed.so", nil) // g2 members share a signer
	b := load(t, p, "signed/g2_v1.signed.so", nil)
	req := func(policy, svn uint16, keyID byte) *sgx.KeyRequest {
		r := &sgx.KeyRequest{KeyName: sgx.KeySeal, KeyPolicy: policy, ISVSVN: svn, AttributeMask: sgx.Attributes{Flags: 0xff0000000000000b}}
		copy(r.CPUSVN[:], p.state.CPUSVN)
		r.KeyID[0] = keyID
		return r
	}
	key := func(e *Enclave, r *sgx.KeyRequest) [16]byte {
		k, err := e.GetKey(r)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if key(a, req(sgx.KeyPolicyMRENCLAVE, 5, 0)) == key(b, req(sgx.KeyPolicyMRENCLAVE, 5, 0)) {
		t.Error("MRENCLAVE policy: two enclaves share a key")
	}
	if key(a, req(sgx.KeyPolicyMRSIGNER, 5, 0)) != key(b, req(sgx.KeyPolicyMRSIGNER, 5, 0)) {
		t.Error("MRSIGNER policy: same signer and product, different keys")
	}
	if key(a, req(sgx.KeyPolicyMRSIGNER, 5, 0)) == key(a, req(sgx.KeyPolicyMRSIGNER, 4, 0)) {
		t.Error("ISVSVN does not enter the key")
	}
	if key(a, req(sgx.KeyPolicyMRSIGNER, 5, 0)) == key(a, req(sgx.KeyPolicyMRSIGNER, 5, 1)) {
		t.Error("KEYID does not enter the key")
	}
	if _, err := a.GetKey(req(sgx.KeyPolicyMRSIGNER, 6, 0)); !errors.Is(err, ErrInvalidISVSVN) {
		t.Errorf("ISVSVN above the enclave's: %v", err)
	}
	hi := req(sgx.KeyPolicyMRSIGNER, 5, 0)
	hi.CPUSVN[0] = 0xff
	if _, err := a.GetKey(hi); !errors.Is(err, ErrInvalidCPUSVN) {
		t.Errorf("CPUSVN above the platform's: %v", err)
	}
	if _, err := a.GetKey(&sgx.KeyRequest{KeyName: sgx.KeyProvision}); !errors.Is(err, ErrInvalidAttrs) {
		t.Errorf("provision key without PROVISIONKEY: %v", err)
	}
	// The same platform opened again gives the same keys.
	p2, err := Open(p.Dir())
	if err != nil {
		t.Fatal(err)
	}
	a2 := load(t, p2, "signed/g2_v0.signed.so", nil)
	if key(a, req(sgx.KeyPolicyMRENCLAVE, 5, 0)) != key(a2, req(sgx.KeyPolicyMRENCLAVE, 5, 0)) {
		t.Error("reopened platform derives other keys")
	}
}

func TestQuote(t *testing.T) {
	p := platform(t)
	e := load(t, p, "signed/g1_v2.signed.so", nil)
	var data [64]byte
	copy(data[:], "bind me")
	r, err := e.Report(p.QETargetInfo(), data)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := p.Quote(r)
	if err != nil {
		t.Fatal(err)
	}
	q, err := dcap.ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	if q.Body.MRENCLAVE != e.MRENCLAVE || q.Body.ReportData != data || q.QEReport.MRENCLAVE != QEMRENCLAVE {
		t.Error("quote content")
	}
	if _, _, err := q.VerifySignatures(p.RootCertificate(), nil, time.Now()); err != nil {
		t.Fatalf("quote does not verify against the platform root: %v", err)
	}
	// Not against another platform's root, nor Intel's.
	if _, _, err := q.VerifySignatures(platform(t).RootCertificate(), nil, time.Now()); !errors.Is(err, dcap.ErrUntrustedRoot) {
		t.Errorf("other platform's root: %v", err)
	}
	intel, err := os.ReadFile("../dcap/testdata/intel-sgx-root-ca/Intel_SGX_Root_CA_2049.der")
	if err != nil {
		t.Fatal(err)
	}
	ic, _ := x509.ParseCertificate(intel)
	if _, _, err := q.VerifySignatures(ic, nil, time.Now()); !errors.Is(err, dcap.ErrUntrustedRoot) {
		t.Errorf("Intel root: %v", err)
	}
	// Same layout as a real quote: version 3, ECDSA-P256, certification
	// type 5, and the fixed-size parts at the same offsets.
	real, err := dcap.ParseQuote(mustRead(t, "../dcap/testdata/phala-dcap-qvl/sgx_quote"))
	if err != nil {
		t.Fatal(err)
	}
	if real.Header.Version != q.Header.Version || real.Header.AttKeyType != q.Header.AttKeyType || real.Certification.Type != q.Certification.Type || len(real.QEAuthData) != len(q.QEAuthData) {
		t.Error("layout differs from the real quote")
	}
	// The QE accepts only reports targeted at it.
	r2, _ := e.Report(e.TargetInfo(), data)
	if _, err := p.Quote(r2); !errors.Is(err, ErrReportMAC) {
		t.Errorf("QE accepted a report for another target: %v", err)
	}
}

func mustRead(t testing.TB, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConcurrentGoroutines(t *testing.T) {
	p := platform(t)
	a := load(t, p, "signed/g1_v0.signed.so", nil)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 16 {
		wg.Go(func() {
			var d [64]byte
			d[0] = byte(i)
			r, err := a.Report(p.QETargetInfo(), d)
			if err == nil {
				_, err = p.Quote(r)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestConcurrentProcesses starts several processes that open the same new
// platform directory at once; they must agree on one platform (a report
// made in one verifies in another).
func TestConcurrentProcesses(t *testing.T) {
	if os.Getenv("SIM_CHILD_DIR") != "" {
		p, err := Open(os.Getenv("SIM_CHILD_DIR"))
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error())
			return
		}
		e := load(t, p, "signed/g1_v0.signed.so", nil)
		b := load(t, p, "signed/g1_v1.signed.so", nil)
		r, _ := e.Report(b.TargetInfo(), [64]byte{1})
		os.Stdout.Write(r.Marshal())
		return
	}
	dir := filepath.Join(t.TempDir(), "platform")
	var wg sync.WaitGroup
	outs := make([][]byte, 4)
	for i := range outs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestConcurrentProcesses$")
			cmd.Env = append(os.Environ(), "SIM_CHILD_DIR="+dir)
			out, _ := cmd.Output()
			outs[i] = out
		})
	}
	wg.Wait()
	p, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := load(t, p, "signed/g1_v1.signed.so", nil)
	for i, out := range outs {
		if len(out) < sgx.ReportSize {
			t.Fatalf("child %d: %q", i, out)
		}
		r, err := sgx.ParseReport(out[:sgx.ReportSize])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.VerifyReport(r); err != nil {
			t.Errorf("child %d's report does not verify here: %v", i, err)
		}
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("platform directory mode %v", st.Mode())
	}
	fst, _ := os.Stat(filepath.Join(dir, StateFile))
	if fst.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v", fst.Mode())
	}
}

// TestPCKExtension checks the simulated PCK certificate with the parser
// real certificates go through.
func TestPCKExtension(t *testing.T) {
	p := platform(t)
	x, err := dcap.ParsePCKExtensions(p.PCKChain()[0])
	if err != nil {
		t.Fatal(err)
	}
	if x.PCESVN != p.state.PCESVN || x.FMSPC != [6]byte(p.state.FMSPC) || x.Components[0] != p.state.CPUSVN[0] || len(x.PPID) != 16 {
		t.Errorf("%+v", x)
	}
}

// TestSimFidelity: the simulator refuses what hardware refuses (issue 9,
// item 13): EGETKEY keys of a DEBUG launch differ from a production
// launch's whatever the mask, CONFIGSVN above the enclave's is refused,
// ECREATE refuses CONFIGID/CONFIGSVN without KSS, and EINIT checks VENDOR
// and the reserved fields.
func TestSimFidelity(t *testing.T) {
	p := platform(t)
	prod := load(t, p, "signed/s1_e1_cA.signed.so", nil)
	dbg := load(t, p, "signed/s1_e1_cA.signed.so", &LoadOptions{Debug: true})
	for _, mask := range []uint64{0, sgx.AttrMode64Bit, 0xff0000000000000b} {
		r := &sgx.KeyRequest{KeyName: sgx.KeySeal, KeyPolicy: sgx.KeyPolicyMRENCLAVE, AttributeMask: sgx.Attributes{Flags: mask}}
		copy(r.CPUSVN[:], p.state.CPUSVN)
		kp, err1 := prod.GetKey(r)
		kd, err2 := dbg.GetKey(r)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if kp == kd {
			t.Errorf("mask %#x: a DEBUG launch gets the production seal key", mask)
		}
	}
	r := &sgx.KeyRequest{KeyName: sgx.KeySeal, ConfigSVN: 1}
	if _, err := prod.GetKey(r); !errors.Is(err, ErrInvalidConfigSV) {
		t.Errorf("CONFIGSVN above the enclave's: %v", err)
	}
	for name, opts := range map[string]*LoadOptions{
		"CONFIGSVN": {ConfigSVN: 2},
		"CONFIGID":  {ConfigID: [sgx.ConfigIDSize]byte{1}},
	} {
		if _, err := p.Load(t.Context(), read(t, "signed/s1_e1_cA.signed.so"), opts); !errors.Is(err, ErrECREATE) {
			t.Errorf("%s without KSS: %v, want ErrECREATE", name, err)
		}
	}
	base := read(t, "signed/g1_v1.signed.so")
	meta := bytes.Index(base, []byte("sgx_metadata\x00")) + 13
	css := meta + 64 // the SIGSTRUCT inside the metadata
	for name, c := range map[string]struct {
		off  int
		want string
	}{
		"VENDOR":    {css + 16, "VENDOR"},
		"RESERVED1": {css + 50, "RESERVED1"},
		"RESERVED3": {css + 995, "RESERVED3"},
		"RESERVED4": {css + 1030, "RESERVED4"},
	} {
		b := bytes.Clone(base)
		b[c.off] ^= 0x01
		if _, err := p.Load(t.Context(), b, nil); !errors.Is(err, ErrEINIT) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s set: %v, want an EINIT error naming %s", name, err, c.want)
		}
	}
}

// TestOpenSNPPlatform: a simulated SNP platform persists in its
// directory: reopened, it is the same machine, and its reports verify
// with the same VCEK.
func TestOpenSNPPlatform(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenSNPPlatform(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenSNPPlatform(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !a.VCEK.Equal(b.VCEK) || !a.ARK.Equal(b.ARK) || a.ChipID != b.ChipID || a.TCB != b.TCB {
		t.Fatal("a reopened SNP platform is another machine")
	}
	r, _, err := b.Launch([48]byte{1}, SNPPolicy, [32]byte{}).Report([64]byte{2})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.VCEK.CheckSignature(x509.ECDSAWithSHA384, r[:0x2a0], snpSignatureDER(t, r)); err != nil {
		t.Errorf("a report of the reopened platform: %v", err)
	}
	os.WriteFile(filepath.Join(dir, SNPStateFile), []byte(`{"version":1}`), 0o600)
	if _, err := OpenSNPPlatform(dir); err == nil {
		t.Error("an incomplete SNP platform state opened")
	}
}

// snpSignatureDER re-encodes a report's little-endian R and S as DER.
func snpSignatureDER(t *testing.T, r []byte) []byte {
	le := func(b []byte) *big.Int {
		x := make([]byte, len(b))
		for i := range b {
			x[len(b)-1-i] = b[i]
		}
		return new(big.Int).SetBytes(x)
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{le(r[0x2a0 : 0x2a0+72]), le(r[0x2a0+72 : 0x2a0+144])})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestTDQuote: a simulated TD's quote parses as a TD quote, verifies under
// the platform's root only, and carries the TD's measurements, the RTMR it
// extended and the report data.
func TestTDQuote(t *testing.T) {
	p, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g := p.LaunchTD([48]byte{1}, [4][48]byte{{2}, {3}, {4}}, 0)
	if err := g.ExtendRTMR(3, [48]byte{5}); err != nil {
		t.Fatal(err)
	}
	if g.ExtendRTMR(0, [48]byte{}) == nil {
		t.Error("a TD extended RTMR 0")
	}
	raw, err := g.Quote([64]byte{6})
	if err != nil {
		t.Fatal(err)
	}
	q, err := dcap.ParseTDQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := sha512.Sum384(append(make([]byte, 48), append([]byte{5}, make([]byte, 47)...)...))
	if q.TD.MRTD != ([48]byte{1}) || q.TD.RTMR[2] != ([48]byte{4}) || q.TD.RTMR[3] != want || q.TD.ReportData != ([64]byte{6}) {
		t.Errorf("TD body %+v", q.TD)
	}
	if _, _, err := (&dcap.Verifier{Root: p.RootCertificate()}).VerifySignatures(q, time.Now()); err != nil {
		t.Errorf("a simulated TD quote: %v", err)
	}
	other, _ := Open(t.TempDir())
	if _, _, err := (&dcap.Verifier{Root: other.RootCertificate()}).VerifySignatures(q, time.Now()); err == nil {
		t.Error("a TD quote verified under another platform's root")
	}
}
