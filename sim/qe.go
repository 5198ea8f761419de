package sim

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"fmt"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/sgx"
)

// The simulated quoting enclave's identity. It is not Intel's QE3: its
// MRSIGNER and vendor ID say "simulated".
var (
	QEMRENCLAVE = sgx.Measurement(sha256.Sum256([]byte("MAGE simulated SGX quoting enclave (QE3-like)")))
	QEMRSIGNER  = sgx.Measurement(sha256.Sum256([]byte("MAGE simulated SGX quoting enclave signer")))
	QEVendorID  = [16]byte{'M', 'A', 'G', 'E', '-', 'S', 'I', 'M', '-', 'Q', 'E', '3'}
)

// Simulated QE and PCE versions.
const (
	QEISVProdID = 1
	QEISVSVN    = 8
)

func (p *Platform) quotingEnclave() *Enclave {
	return &Enclave{platform: p, name: "qe", Identity: Identity{
		MRENCLAVE:  QEMRENCLAVE,
		MRSIGNER:   QEMRSIGNER,
		Attributes: sgx.Attributes{Flags: sgx.AttrInit | sgx.AttrMode64Bit | sgx.AttrProvisionKey, Xfrm: 0x7},
		ISVProdID:  QEISVProdID,
		ISVSVN:     QEISVSVN,
	}}
}

// QETargetInfo returns the quoting enclave's TARGETINFO: an application
// enclave makes its REPORT for this target, then asks for a quote.
func (p *Platform) QETargetInfo() *sgx.TargetInfo { return p.qe.TargetInfo() }

// Quote is the simulated quoting enclave: it verifies that report was made
// on this platform for the QE, and returns a DCAP ECDSA-P256 quote, version
// 3, with certification data type 5 (the PEM PCK chain).
func (p *Platform) Quote(report *sgx.Report) ([]byte, error) {
	if _, err := p.qe.VerifyReport(report); err != nil {
		return nil, fmt.Errorf("sim: quoting enclave: %w", err)
	}
	return p.sign(&dcap.Quote{
		Header: dcap.Header{Version: 3, AttKeyType: dcap.AttKeyECDSAP256, QESVN: QEISVSVN, PCESVN: p.state.PCESVN, QEVendorID: QEVendorID},
		Body:   report.Body,
	})
}

// sign completes a quote with the QE's data and PCK chain, and signs it
// with the attestation key.
func (p *Platform) sign(q *dcap.Quote) ([]byte, error) {
	p.qeOnce.Do(p.initQEData)
	if p.qeErr != nil {
		return nil, p.qeErr
	}
	q.AttestKey, q.QEAuthData, q.QEReport, q.QEReportSig = p.qeAttestKey, p.qeAuthData, p.qeReport, p.qeReportSig
	q.Certification = dcap.CertificationData{Type: dcap.CertPCKChain, Data: p.qeChainPEM}
	var err error
	if q.Signature, err = signP256(p.attestKey, q.SignedBytes()); err != nil {
		return nil, err
	}
	return q.Marshal()
}

// initQEData makes the parts of every quote that depend only on the
// platform: the attestation key, the QE's report binding it (signed by the
// PCK key) and the PCK chain, as the real QE3 keeps them between quotes.
func (p *Platform) initQEData() {
	pub := p.attestKey.PublicKey
	pub.X.FillBytes(p.qeAttestKey[:32])
	pub.Y.FillBytes(p.qeAttestKey[32:])
	p.qeAuthData = make([]byte, 32)
	for i := range p.qeAuthData {
		p.qeAuthData[i] = byte(i)
	}
	h := sha256.New()
	h.Write(p.qeAttestKey[:])
	h.Write(p.qeAuthData)
	var data [sgx.ReportDataSize]byte
	copy(data[:], h.Sum(nil))
	p.qeReport = p.qe.body(data)
	for _, c := range p.PCKChain() {
		p.qeChainPEM = append(p.qeChainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	p.qeReportSig, p.qeErr = signP256(p.pckKey, p.qeReport.Marshal())
}

func signP256(k *ecdsa.PrivateKey, msg []byte) ([64]byte, error) {
	d := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
	var out [64]byte
	if err != nil {
		return out, err
	}
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}
