package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// SNPPlatform is a simulated AMD SEV-SNP machine: a root key (ARK), a
// signing key (ASK) and a chip endorsement key (VCEK) of its own, certified
// as AMD certifies its product keys (names, RSA-PSS, the KDS extensions),
// so that the verifier's real checks run on them. Its keys are NOT AMD's:
// its reports are trusted only by a verifier told to trust its roots
// (snpreport.Verifier.InsecureSimulationRoots).
type SNPPlatform struct {
	// ProductLine is the simulated product line (Milan).
	ProductLine string
	ARK, ASK    *x509.Certificate
	VCEK        *x509.Certificate
	ChipID      [64]byte
	TCB         uint64 // the reported TCB: the VCEK is this TCB's

	vcekKey *ecdsa.PrivateKey
}

// SNPStateFile is the file in a platform directory that holds a simulated
// SNP platform's certificates and VCEK key.
const SNPStateFile = "snp-platform.json"

type snpState struct {
	Version     int      `json:"version"`
	ProductLine string   `json:"product_line"`
	Certs       []string `json:"certs"` // PEM: ARK, ASK, VCEK
	VCEKKey     string   `json:"vcek_key"`
	ChipID      []byte   `json:"chip_id"`
	TCB         uint64   `json:"tcb"`
}

// OpenSNPPlatform opens the simulated SEV-SNP platform in dir, creating it
// on first use (processes sharing dir agree on one, as with Open).
func OpenSNPPlatform(dir string) (*SNPPlatform, error) {
	path, raw, err := readOrCreate(dir, SNPStateFile, func() (any, error) {
		p, err := NewSNPPlatform()
		if err != nil {
			return nil, err
		}
		st := snpState{Version: 1, ProductLine: p.ProductLine, ChipID: p.ChipID[:], TCB: p.TCB, VCEKKey: marshalECKey(p.vcekKey)}
		for _, c := range []*x509.Certificate{p.ARK, p.ASK, p.VCEK} {
			st.Certs = append(st.Certs, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
		}
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	var st snpState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("sim: %s: %w", path, err)
	}
	if st.Version != 1 || len(st.Certs) != 3 || len(st.ChipID) != 64 {
		return nil, fmt.Errorf("sim: %s: SNP platform state is incomplete or of another version", path)
	}
	p := &SNPPlatform{ProductLine: st.ProductLine, ChipID: [64]byte(st.ChipID), TCB: st.TCB}
	certs, err := parseCerts(st.Certs)
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", path, err)
	}
	p.ARK, p.ASK, p.VCEK = certs[0], certs[1], certs[2]
	if p.vcekKey, err = parseECKey(st.VCEKKey); err != nil {
		return nil, fmt.Errorf("sim: %s: VCEK key: %w", path, err)
	}
	return p, nil
}

// The simulated chip's TCB: boot loader 3, TEE 0, SNP 8, microcode 115.
const simSNPTCB = 3 | 8<<48 | 115<<56

// NewSNPPlatform makes a simulated SEV-SNP machine with fresh keys,
// certified from now for ten years.
func NewSNPPlatform() (*SNPPlatform, error) {
	line := "Milan"
	now := time.Now().Add(-time.Hour).Truncate(time.Second)
	arkKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	askKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	vcekKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	p := &SNPPlatform{ProductLine: line, TCB: simSNPTCB, vcekKey: vcekKey}
	if _, err := rand.Read(p.ChipID[:]); err != nil {
		return nil, err
	}
	amd := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Country: []string{"US"}, Locality: []string{"Santa Clara"}, Province: []string{"CA"},
			Organization: []string{"Advanced Micro Devices"}, OrganizationalUnit: []string{"Engineering"}}
	}
	pss := x509.SHA384WithRSAPSS
	crl := "https://kdsintf.amd.com/vcek/v1/" + line + "/crl"
	arkTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: amd("ARK-" + line), Issuer: amd("ARK-" + line), NotBefore: now, NotAfter: now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, SignatureAlgorithm: pss, CRLDistributionPoints: []string{crl}}
	if p.ARK, err = certify(arkTmpl, arkTmpl, &arkKey.PublicKey, arkKey); err != nil {
		return nil, err
	}
	askTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: amd("SEV-" + line), NotBefore: now, NotAfter: now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, SignatureAlgorithm: pss, CRLDistributionPoints: []string{crl}}
	if p.ASK, err = certify(askTmpl, p.ARK, &askKey.PublicKey, arkKey); err != nil {
		return nil, err
	}
	exts, err := kdsExtensions(line+"-B0", p.TCB, p.ChipID[:])
	if err != nil {
		return nil, err
	}
	vcekTmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: amd("SEV-VCEK"), NotBefore: now, NotAfter: now.AddDate(10, 0, 0),
		SignatureAlgorithm: pss, ExtraExtensions: exts}
	if p.VCEK, err = certify(vcekTmpl, p.ASK, &vcekKey.PublicKey, askKey); err != nil {
		return nil, err
	}
	return p, nil
}

// kdsExtensions are a VCEK certificate's extensions (AMD's Versioned Chip
// Endorsement Key specification, 57230): structure version, product name,
// the TCB's security patch levels and the chip ID.
func kdsExtensions(product string, tcb uint64, chipID []byte) ([]pkix.Extension, error) {
	oid := func(x ...int) asn1.ObjectIdentifier {
		return append(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1}, x...)
	}
	var exts []pkix.Extension
	add := func(id asn1.ObjectIdentifier, v any, params string) error {
		b, err := asn1.MarshalWithParams(v, params)
		exts = append(exts, pkix.Extension{Id: id, Value: b})
		return err
	}
	errs := []error{add(oid(1), 0, ""), add(oid(2), product, "ia5")}
	for i, shift := range []int{0, 8, 48, 16, 24, 32, 40, 56} {
		// blSPL, teeSPL, snpSPL, SPL 4 to 7, ucodeSPL: TCB_VERSION's bytes.
		errs = append(errs, add(oid(3, i+1), int(tcb>>shift&0xff), ""))
	}
	errs = append(errs, add(oid(4), chipID, ""))
	return exts, errors.Join(errs...)
}

// SNPGuest is a VM launched on a simulated SEV-SNP platform with a launch
// digest and a guest policy.
type SNPGuest struct {
	p           *SNPPlatform
	measurement [48]byte
	policy      uint64
	hostData    [32]byte
}

// SNPPolicy is the guest policy simulated VMs launch with by default: ABI
// 0.0, SMT allowed, the reserved bit 17 set, no debugging.
const SNPPolicy = 0x30000

// Launch starts a simulated VM whose launch digest is measurement (what
// the host's launch commands would have measured: snp.LaunchDigest of its
// firmware and boot), under a guest policy and with host data.
func (p *SNPPlatform) Launch(measurement [48]byte, policy uint64, hostData [32]byte) *SNPGuest {
	return &SNPGuest{p: p, measurement: measurement, policy: policy, hostData: hostData}
}

// Measurement returns the guest's launch digest.
func (g *SNPGuest) Measurement() [48]byte { return g.measurement }

// Report returns an attestation report of the guest with the report data,
// signed by the platform's VCEK (ATTESTATION_REPORT, version 2), and the
// certificate table of an extended report holding the VCEK.
func (g *SNPGuest) Report(data [64]byte) (report, certTable []byte, err error) {
	return g.ReportAtVMPL(data, 0)
}

// ReportAtVMPL is Report asked for by code at a virtual machine privilege
// level (0 is the most privileged; a guest without an SVSM runs there).
func (g *SNPGuest) ReportAtVMPL(data [64]byte, vmpl uint32) (report, certTable []byte, err error) {
	r := make([]byte, 0x4a0)
	le := binary.LittleEndian
	le.PutUint32(r[0x00:], 2) // VERSION
	le.PutUint64(r[0x08:], g.policy)
	le.PutUint32(r[0x30:], vmpl)
	le.PutUint32(r[0x34:], 1) // SIGNATURE_ALGO: ECDSA P-384 with SHA-384
	le.PutUint64(r[0x38:], g.p.TCB)
	copy(r[0x50:], data[:])
	copy(r[0x90:], g.measurement[:])
	copy(r[0xc0:], g.hostData[:])
	if _, err := rand.Read(r[0x140:0x160]); err != nil { // REPORT_ID
		return nil, nil, err
	}
	le.PutUint64(r[0x180:], g.p.TCB) // REPORTED_TCB
	copy(r[0x1a0:], g.p.ChipID[:])
	le.PutUint64(r[0x1e0:], g.p.TCB) // COMMITTED_TCB
	r[0x1e8], r[0x1e9], r[0x1ea] = 21, 55, 1
	r[0x1ec], r[0x1ed], r[0x1ee] = 21, 55, 1
	le.PutUint64(r[0x1f0:], g.p.TCB) // LAUNCH_TCB
	digest := sha512.Sum384(r[:0x2a0])
	rs, ss, err := ecdsa.Sign(rand.Reader, g.p.vcekKey, digest[:])
	if err != nil {
		return nil, nil, err
	}
	// R and S, each 72 bytes little-endian.
	putLE(r[0x2a0:0x2a0+72], rs)
	putLE(r[0x2a0+72:0x2a0+144], ss)
	return r, snpCertTable(g.p.VCEK.Raw), nil
}

func putLE(dst []byte, x *big.Int) {
	b := x.Bytes()
	for i := range b {
		dst[i] = b[len(b)-1-i]
	}
}

// snpCertTable is the certificate table of an extended report with one
// entry, the VCEK (GUID 63da758d-e664-4564-adc5-f4b93be8accd).
func snpCertTable(vcek []byte) []byte {
	guid := [16]byte{0x8d, 0x75, 0xda, 0x63, 0x64, 0xe6, 0x64, 0x45, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd}
	t := append(guid[:], 0, 0, 0, 0, 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(t[16:], 48)
	binary.LittleEndian.PutUint32(t[20:], uint32(len(vcek)))
	t = append(t, make([]byte, 24)...)
	return append(t, vcek...)
}
