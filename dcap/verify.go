package dcap

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Errors of quote verification. Every verification error wraps one of
// them (or ErrFormat), so callers can tell which check failed with
// errors.Is.
var (
	ErrChain         = errors.New("dcap: PCK certificate chain")
	ErrUntrustedRoot = errors.New("dcap: chain does not end at the trusted root")
	ErrNoPCKChain    = errors.New("dcap: no PCK certificate chain")
	ErrQEReportSig   = errors.New("dcap: QE report signature")
	ErrQEBinding     = errors.New("dcap: QE report data does not bind the attestation key")
	ErrQuoteSig      = errors.New("dcap: quote signature")
)

// CheckStatus is the outcome of one verification check.
type CheckStatus string

// Check outcomes.
const (
	Pass CheckStatus = "pass"
	Fail CheckStatus = "fail"
	Skip CheckStatus = "skip" // not reached because an earlier check failed, or not applicable
)

// Check is the outcome of one named verification step.
type Check struct {
	Name   string      `json:"name"`             // one of the Check* names
	Status CheckStatus `json:"status"`           // Pass, Fail or Skip
	Detail string      `json:"detail,omitempty"` // what was found; for Fail, the error
}

// Names of the checks, in the order they are made.
const (
	CheckParse               = "parse"                 // the quote parses (ParseQuote)
	CheckPCKChain            = "pck_chain"             // PCK <- PCK CA <- pinned root, valid at the time
	CheckQEReportSignature   = "qe_report_signature"   // the PCK key signed the QE report
	CheckQEReportData        = "qe_report_data"        // QE report data = SHA-256(attestation key || QE auth data) || 0*32
	CheckQuoteSignature      = "quote_signature"       // the attestation key signed header || report body
	CheckPCKExtensions       = "pck_extensions"        // the PCK certificate's SGX extension parses
	CheckRootCACRL           = "root_ca_crl"           // root CA CRL: signed by the root, current, PCK CA not revoked
	CheckPCKCRL              = "pck_crl"               // PCK CA CRL: signed by the PCK CA, current, PCK not revoked
	CheckPCKCRLIssuerChain   = "pck_crl_issuer_chain"  // if given: the PCK CRL issuer chain is the PCK CA's, to the root
	CheckTCBInfoSignature    = "tcb_info_signature"    // TCB Info: signing chain to the root, not revoked, signature over the exact JSON
	CheckTCBInfo             = "tcb_info"              // TCB Info parses (version 2 or 3, SGX)
	CheckTCBInfoValidity     = "tcb_info_validity"     // issueDate <= time <= nextUpdate
	CheckTCBInfoPlatform     = "tcb_info_platform"     // FMSPC and PCE-ID equal the PCK certificate's
	CheckTCBLevel            = "tcb_level"             // the platform's TCB level and its status
	CheckQEIdentitySignature = "qe_identity_signature" // QE Identity: signing chain, not revoked, signature
	CheckQEIdentity          = "qe_identity"           // QE Identity parses (version 2, id QE)
	CheckQEIdentityValidity  = "qe_identity_validity"  // issueDate <= time <= nextUpdate
	CheckQEIdentityMatch     = "qe_identity_match"     // MRSIGNER, ISVPRODID, masked MISCSELECT and ATTRIBUTES; QE TCB status
	CheckTCBStatus           = "tcb_status"            // the combined TCB status is accepted by the policy
)

// checkOrder lists every check of Verify; VerifyWithoutCollateral makes
// the first five.
var checkOrder = [...]string{
	CheckParse, CheckPCKChain, CheckQEReportSignature, CheckQEReportData, CheckQuoteSignature,
	CheckPCKExtensions, CheckRootCACRL, CheckPCKCRL, CheckPCKCRLIssuerChain,
	CheckTCBInfoSignature, CheckTCBInfo, CheckTCBInfoValidity, CheckTCBInfoPlatform, CheckTCBLevel,
	CheckQEIdentitySignature, CheckQEIdentity, CheckQEIdentityValidity, CheckQEIdentityMatch,
	CheckTCBStatus,
}

// checklist records checks in order; after a failure, the checks not
// reached are recorded as skipped.
type checklist struct {
	checks []Check
	names  []string // the checks this run makes, in order
}

func (l *checklist) pass(name, detail string) {
	l.checks = append(l.checks, Check{Name: name, Status: Pass, Detail: detail})
}

func (l *checklist) skip(name, detail string) {
	l.checks = append(l.checks, Check{Name: name, Status: Skip, Detail: detail})
}

// fail records the failure of name and skips every later check.
func (l *checklist) fail(name string, err error) error {
	l.checks = append(l.checks, Check{Name: name, Status: Fail, Detail: err.Error()})
	after := false
	for _, n := range l.names {
		if after {
			l.skip(n, "not reached")
		}
		after = after || n == name
	}
	return err
}

// verifyP256 checks a raw r||s ECDSA P-256 signature over SHA-256(msg).
func verifyP256(pub *ecdsa.PublicKey, msg []byte, sig [64]byte) bool {
	d := sha256.Sum256(msg)
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, d[:], r, s)
}

// AttestationKey returns the quote's attestation public key, checked to be
// a point of P-256.
func (q *Quote) AttestationKey() (*ecdsa.PublicKey, error) {
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, q.AttestKey[:]...))
	if err != nil {
		return nil, fmt.Errorf("%w: attestation key is not a P-256 point: %v", ErrQuoteSig, err)
	}
	return k, nil
}

// PCKChain returns the PCK certificates the quote carries: the chain of
// certification data type 5, or the leaf alone of type 4. Types 1 to 3
// carry none (ErrNoPCKChain): the verifier supplies the chain.
func (q *Quote) PCKChain() ([]*x509.Certificate, error) {
	return q.Certification.Certificates()
}

// VerifySignatures checks the quote's cryptographic chain against a
// trusted root at time now: the PCK chain (PCK certificate <- PCK CA <-
// root, root pinned by public key, every certificate valid at now), the QE
// report signature by the PCK key, the QE report data binding the
// attestation key and QE authentication data, and the quote signature by
// the attestation key. chain, if not nil, replaces the chain carried in
// the quote (required for certification data types 1 to 3).
//
// It checks no revocation, TCB level or QE identity: that needs Intel
// collateral (see Verify). It returns the PCK certificate and the checks
// made, the failed one last, with the error.
func (q *Quote) VerifySignatures(root *x509.Certificate, chain []*x509.Certificate, now time.Time) (*x509.Certificate, []Check, error) {
	l := &checklist{names: checkOrder[1:5]}
	verified, err := q.verifySignatures(l, root, chain, now)
	if err != nil {
		return nil, l.checks, err
	}
	return verified[0], l.checks, nil
}

// verifySignatures makes the checks of VerifySignatures into l and
// returns the verified PCK chain, leaf first.
func (q *Quote) verifySignatures(l *checklist, root *x509.Certificate, chain []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	if chain == nil {
		c, err := q.PCKChain()
		if err != nil {
			return nil, l.fail(CheckPCKChain, err)
		}
		chain = c
	}
	verified, err := verifyChain(chain, root, now, rolePCK)
	if err != nil {
		return nil, l.fail(CheckPCKChain, err)
	}
	l.pass(CheckPCKChain, fmt.Sprintf("%q <- %q <- pinned root, valid at %s", verified[0].Subject.CommonName, verified[1].Subject.CommonName, now.UTC().Format(time.RFC3339)))
	if err := q.verifyQE(verified[0]); err != nil {
		if errors.Is(err, ErrQEBinding) {
			l.pass(CheckQEReportSignature, "")
			return nil, l.fail(CheckQEReportData, err)
		}
		return nil, l.fail(CheckQEReportSignature, err)
	}
	l.pass(CheckQEReportSignature, "by the PCK key")
	l.pass(CheckQEReportData, "SHA-256(attestation key || QE authentication data), then zeros")
	if err := q.verifyQuoteSignature(); err != nil {
		return nil, l.fail(CheckQuoteSignature, err)
	}
	l.pass(CheckQuoteSignature, "by the attestation key over header || report body")
	return verified, nil
}

// verifyQE checks the QE report signature by the PCK certificate's key and
// the binding of the attestation key in the QE report data.
func (q *Quote) verifyQE(pck *x509.Certificate) error {
	pub, ok := pck.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return fmt.Errorf("%w: PCK key is %T, want ECDSA P-256", ErrQEReportSig, pck.PublicKey)
	}
	if !verifyP256(pub, q.QEReport.Marshal(), q.QEReportSig) {
		return fmt.Errorf("%w: does not verify with the PCK key", ErrQEReportSig)
	}
	want := QEReportData(q.AttestKey, q.QEAuthData)
	if subtle.ConstantTimeCompare(q.QEReport.ReportData[:], want[:]) != 1 {
		return fmt.Errorf("%w: QE report data is not SHA-256(attestation key || %d bytes of QE authentication data) followed by 32 zero bytes", ErrQEBinding, len(q.QEAuthData))
	}
	return nil
}

// verifyQuoteSignature checks the quote's signature by its attestation key.
func (q *Quote) verifyQuoteSignature() error {
	ak, err := q.AttestationKey()
	if err != nil {
		return err
	}
	if !verifyP256(ak, q.SignedBytes(), q.Signature) {
		return fmt.Errorf("%w: does not verify with the attestation key", ErrQuoteSig)
	}
	return nil
}

// SignatureOptions configures VerifyWithoutCollateral.
type SignatureOptions struct {
	// Root is the trust anchor, pinned by public key. It is required: there
	// is no default, so that a quote of the simulated platform is trusted
	// only where its root is configured on purpose.
	Root *x509.Certificate
	// Time is the verification time (zero: time.Now()).
	Time time.Time
	// PCKChain, if not nil, replaces the chain carried in the quote (needed
	// for certification data types 1 to 3).
	PCKChain []*x509.Certificate
}

// VerifyWithoutCollateral verifies only a quote's cryptographic chain:
// the PCK chain to opts.Root at opts.Time, the QE report signature, the QE
// report data binding, and the quote signature. It is WEAKER than Verify:
// it checks no CRL (a revoked PCK or CA passes), no TCB level (an
// out-of-date or compromised platform passes) and not the quoting
// enclave's identity (whatever enclave the PCK key certified passes). Use
// it only where no TCB collateral exists, as on the simulated platform.
//
// The Result has the enclave's identity and the checks; TCBStatus is empty.
func VerifyWithoutCollateral(quote []byte, opts SignatureOptions) (*Result, error) {
	res := &Result{}
	l := &checklist{names: checkOrder[:5]}
	defer func() { res.Checks = l.checks }()
	q, err := ParseQuote(quote)
	if err != nil {
		return res, l.fail(CheckParse, err)
	}
	res.Quote, res.Enclave = q, q.Body
	l.pass(CheckParse, fmt.Sprintf("version %d quote, certification data type %d", q.Header.Version, q.Certification.Type))
	if opts.Root == nil {
		return res, l.fail(CheckPCKChain, fmt.Errorf("%w: SignatureOptions.Root is required", ErrUntrustedRoot))
	}
	now := opts.Time
	if now.IsZero() {
		now = time.Now()
	}
	verified, err := q.verifySignatures(l, opts.Root, opts.PCKChain, now)
	if err != nil {
		return res, err
	}
	if x, err := ParsePCKExtensions(verified[0]); err == nil {
		res.FMSPC = fmt.Sprintf("%X", x.FMSPC[:])
	}
	return res, nil
}
