package dcap

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/magesgx/mage/sgx"
)

// TCB statuses.
const (
	UpToDate                          = "UpToDate"
	SWHardeningNeeded                 = "SWHardeningNeeded"
	ConfigurationNeeded               = "ConfigurationNeeded"
	ConfigurationAndSWHardeningNeeded = "ConfigurationAndSWHardeningNeeded"
	OutOfDate                         = "OutOfDate"
	OutOfDateConfigurationNeeded      = "OutOfDateConfigurationNeeded"
	Revoked                           = "Revoked"
)

// Errors of full verification.
var (
	ErrRevoked       = errors.New("dcap: certificate revoked")
	ErrCRL           = errors.New("dcap: CRL")
	ErrTCBInfo       = errors.New("dcap: TCB Info")
	ErrQEIdentity    = errors.New("dcap: QE Identity")
	ErrTCBNotFound   = errors.New("dcap: no TCB level matches the platform")
	ErrStatusRefused = errors.New("dcap: TCB status not accepted by policy")
)

// Options of Verify.
type Options struct {
	// Root is the trust anchor (nil: the Intel SGX Root CA), pinned by key.
	Root *x509.Certificate
	// Time is the verification time (zero: now). Certificates, CRLs, TCB
	// Info and QE Identity must all be valid then.
	Time time.Time
	// Accept lists the acceptable TCB statuses (nil: UpToDate only).
	Accept []string
	// PCKChain replaces the chain in the quote (for certification data
	// types 1 to 3, where the PCK certificate comes separately).
	PCKChain []*x509.Certificate
}

// Result is the outcome of Verify.
type Result struct {
	Quote       *Quote         `json:"-"`
	Enclave     sgx.ReportBody `json:"-"`
	TCBStatus   string         `json:"tcb_status"`
	AdvisoryIDs []string       `json:"advisory_ids"`
	PlatformTCB string         `json:"platform_tcb_status"`
	QETCB       string         `json:"qe_tcb_status"`
	FMSPC       string         `json:"fmspc"`
	Checks      []Check        `json:"checks"`
}

// Verify verifies a quote with Intel collateral: the cryptographic chain
// (VerifySignatures), both CRLs, the TCB Info and QE Identity (signatures,
// issuer chains, validity, FMSPC and PCE-ID), the QE's identity, and the
// platform's TCB level; the resulting TCB status must be one opts accepts.
// The Result lists every check; it is returned, filled as far as
// verification got, even with an error.
func Verify(quote []byte, col *Collateral, opts Options) (*Result, error) {
	res := &Result{}
	now := opts.Time
	if now.IsZero() {
		now = time.Now()
	}
	root := opts.Root
	if root == nil {
		root = IntelRootCA()
	}
	accept := opts.Accept
	if accept == nil {
		accept = []string{UpToDate}
	}
	pass := func(name, detail string) {
		res.Checks = append(res.Checks, Check{Name: name, OK: true, Detail: detail})
	}
	fail := func(name string, err error) (*Result, error) {
		res.Checks = append(res.Checks, Check{Name: name, Detail: err.Error()})
		return res, err
	}
	q, err := ParseQuote(quote)
	if err != nil {
		return fail("parse", err)
	}
	res.Quote, res.Enclave = q, q.Body
	pass("parse", fmt.Sprintf("version %d quote", q.Header.Version))
	if col == nil {
		return fail("collateral", fmt.Errorf("%w: none given", ErrCollateral))
	}
	chain := opts.PCKChain
	if chain == nil {
		if chain, err = q.PCKChain(); err != nil {
			return fail("pck_chain", err)
		}
	}
	leaf, checks, err := q.VerifySignatures(root, chain, now)
	res.Checks = append(res.Checks, checks...)
	if err != nil {
		return res, err
	}
	pck, err := ParsePCKExtensions(leaf)
	if err != nil {
		return fail("pck_extensions", err)
	}
	res.FMSPC = strings.ToUpper(hex.EncodeToString(pck.FMSPC[:]))

	// CRLs: the root CA's revokes intermediates, the PCK CA's revokes PCKs.
	var pckCA *x509.Certificate
	for _, c := range chain {
		if bytes.Equal(c.RawSubject, leaf.RawIssuer) {
			pckCA = c
		}
	}
	if pckCA == nil {
		return fail("pck_ca", fmt.Errorf("%w: the PCK certificate's issuer is not in the chain", ErrChain))
	}
	if err := checkCRL(col.RootCACRL, root, now, pckCA); err != nil {
		return fail("root_ca_crl", err)
	}
	pass("root_ca_crl", "PCK CA not revoked")
	if err := checkCRL(col.PCKCRL, pckCA, now, leaf); err != nil {
		return fail("pck_crl", err)
	}
	pass("pck_crl", "PCK certificate not revoked")

	// TCB Info.
	if err := checkSignedCollateral(col.TCBInfo, col.TCBInfoSignature, col.TCBInfoIssuerChain, root, col.RootCACRL, now); err != nil {
		return fail("tcb_info_signature", fmt.Errorf("%w: %v", ErrTCBInfo, err))
	}
	pass("tcb_info_signature", "signed by the TCB signing key, chained to the root")
	ti, err := ParseTCBInfo(col.TCBInfo)
	if err != nil {
		return fail("tcb_info", err)
	}
	if now.Before(ti.IssueDate) || now.After(ti.NextUpdate) {
		return fail("tcb_info_validity", fmt.Errorf("%w: valid %s to %s, not at %s", ErrTCBInfo, ti.IssueDate.Format(time.RFC3339), ti.NextUpdate.Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	}
	pass("tcb_info_validity", "")
	if !strings.EqualFold(ti.FMSPC, res.FMSPC) || !strings.EqualFold(ti.PCEID, hex.EncodeToString(pck.PCEID[:])) {
		return fail("tcb_info_platform", fmt.Errorf("%w: for FMSPC %s PCE-ID %s, the PCK says %s / %x", ErrTCBInfo, ti.FMSPC, ti.PCEID, res.FMSPC, pck.PCEID))
	}
	pass("tcb_info_platform", "FMSPC and PCE-ID match the PCK certificate")
	level := matchTCB(ti, pck)
	if level == nil {
		return fail("tcb_level", ErrTCBNotFound)
	}
	res.PlatformTCB = level.TCBStatus
	pass("tcb_level", level.TCBStatus)

	// QE Identity.
	if err := checkSignedCollateral(col.QEIdentity, col.QEIdentitySignature, col.QEIdentityIssuerChain, root, col.RootCACRL, now); err != nil {
		return fail("qe_identity_signature", fmt.Errorf("%w: %v", ErrQEIdentity, err))
	}
	pass("qe_identity_signature", "")
	qi, err := ParseQEIdentity(col.QEIdentity)
	if err != nil {
		return fail("qe_identity", err)
	}
	if now.Before(qi.IssueDate) || now.After(qi.NextUpdate) {
		return fail("qe_identity_validity", fmt.Errorf("%w: valid %s to %s", ErrQEIdentity, qi.IssueDate.Format(time.RFC3339), qi.NextUpdate.Format(time.RFC3339)))
	}
	pass("qe_identity_validity", "")
	qeStatus, qeAdv, err := matchQE(qi, &q.QEReport)
	if err != nil {
		return fail("qe_identity_match", err)
	}
	res.QETCB = qeStatus
	pass("qe_identity_match", qeStatus)

	res.TCBStatus = converge(level.TCBStatus, qeStatus)
	res.AdvisoryIDs = union(level.AdvisoryIDs, qeAdv)
	if !slices.Contains(accept, res.TCBStatus) {
		return fail("tcb_status", fmt.Errorf("%w: %s (accepted: %s)", ErrStatusRefused, res.TCBStatus, strings.Join(accept, ", ")))
	}
	pass("tcb_status", res.TCBStatus)
	return res, nil
}

// checkCRL verifies the CRL's signature by issuer and validity at now, and
// that cert is not revoked by it.
func checkCRL(crl *x509.RevocationList, issuer *x509.Certificate, now time.Time, cert *x509.Certificate) error {
	if crl == nil {
		return fmt.Errorf("%w: missing", ErrCRL)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("%w: not signed by %q: %v", ErrCRL, issuer.Subject.CommonName, err)
	}
	if now.Before(crl.ThisUpdate) || (!crl.NextUpdate.IsZero() && now.After(crl.NextUpdate)) {
		return fmt.Errorf("%w: %q valid %s to %s, not at %s", ErrCRL, issuer.Subject.CommonName, crl.ThisUpdate.Format(time.RFC3339), crl.NextUpdate.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	for _, r := range crl.RevokedCertificateEntries {
		if r.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return fmt.Errorf("%w: %q (serial %x)", ErrRevoked, cert.Subject.CommonName, cert.SerialNumber)
		}
	}
	return nil
}

// checkSignedCollateral checks signed JSON: the issuer chain to the root,
// the signing certificate not revoked by the root CRL, and the ECDSA
// signature over the exact bytes.
func checkSignedCollateral(body, sig []byte, chain []*x509.Certificate, root *x509.Certificate, rootCRL *x509.RevocationList, now time.Time) error {
	if len(body) == 0 || len(sig) != 64 {
		return errors.New("missing body or signature")
	}
	leaf, err := VerifyChain(chain, root, now)
	if err != nil {
		return err
	}
	if rootCRL != nil {
		if err := checkCRL(rootCRL, root, now, leaf); err != nil {
			return err
		}
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("signing key is %T, want ECDSA", leaf.PublicKey)
	}
	if !verifyP256(pub, body, [64]byte(sig)) {
		return errors.New("signature does not verify over the JSON as received")
	}
	return nil
}

// matchTCB returns the first TCB level (levels are ordered newest first)
// that the platform's TCB reaches in every component and PCESVN.
func matchTCB(ti *TCBInfo, pck *PCKExtensions) *TCBLevel {
	for i := range ti.TCBLevels {
		l := &ti.TCBLevels[i]
		ok := int(pck.PCESVN) >= l.TCB.PCESVN
		for c := range 16 {
			ok = ok && int(pck.Components[c]) >= l.TCB.Components[c]
		}
		if ok {
			return l
		}
	}
	return nil
}

// matchQE checks the QE report against the QE Identity and returns the QE's
// TCB status and advisories.
func matchQE(qi *QEIdentity, r *sgx.ReportBody) (string, []string, error) {
	if !bytes.Equal(qi.MRSIGNER, r.MRSIGNER[:]) {
		return "", nil, fmt.Errorf("%w: QE MRSIGNER %s is not %x", ErrQEIdentity, r.MRSIGNER, qi.MRSIGNER)
	}
	if qi.ISVProdID != r.ISVProdID {
		return "", nil, fmt.Errorf("%w: QE ISVPRODID %d is not %d", ErrQEIdentity, r.ISVProdID, qi.ISVProdID)
	}
	le := binary.LittleEndian
	if le.Uint32(qi.MiscSelect)&le.Uint32(qi.MiscSelectMask) != r.MiscSelect&le.Uint32(qi.MiscSelectMask) {
		return "", nil, fmt.Errorf("%w: QE MISCSELECT %#x does not match under the mask", ErrQEIdentity, r.MiscSelect)
	}
	var attrs [16]byte
	le.PutUint64(attrs[0:], r.Attributes.Flags)
	le.PutUint64(attrs[8:], r.Attributes.Xfrm)
	for i := range attrs {
		if attrs[i]&qi.AttributesMask[i] != qi.Attributes[i]&qi.AttributesMask[i] {
			return "", nil, fmt.Errorf("%w: QE ATTRIBUTES %x do not match under the mask", ErrQEIdentity, attrs)
		}
	}
	for _, l := range qi.TCBLevels {
		if r.ISVSVN >= l.TCB.ISVSVN {
			return l.TCBStatus, l.AdvisoryIDs, nil
		}
	}
	return Revoked, nil, nil
}

// converge combines the platform and QE TCB statuses as Intel's QVL does.
func converge(platform, qe string) string {
	switch qe {
	case Revoked:
		return Revoked
	case OutOfDate:
		switch platform {
		case UpToDate, SWHardeningNeeded:
			return OutOfDate
		case ConfigurationNeeded, ConfigurationAndSWHardeningNeeded:
			return OutOfDateConfigurationNeeded
		}
	}
	return platform
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}
