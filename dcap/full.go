package dcap

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
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

// TCBStatus is a platform's or quoting enclave's TCB status. It marshals
// to Intel's spelling, as TCB Info and QE Identity carry it.
type TCBStatus string

// TCB statuses, as Intel's TCB Info and QE Identity spell them.
const (
	UpToDate                          TCBStatus = "UpToDate"
	SWHardeningNeeded                 TCBStatus = "SWHardeningNeeded"
	ConfigurationNeeded               TCBStatus = "ConfigurationNeeded"
	ConfigurationAndSWHardeningNeeded TCBStatus = "ConfigurationAndSWHardeningNeeded"
	OutOfDate                         TCBStatus = "OutOfDate"
	OutOfDateConfigurationNeeded      TCBStatus = "OutOfDateConfigurationNeeded"
	Revoked                           TCBStatus = "Revoked" // never accepted
)

// ParseTCBStatus returns the status Intel spells s, or an error naming the
// known ones.
func ParseTCBStatus(s string) (TCBStatus, error) {
	if st := TCBStatus(s); slices.Contains(tcbInfoStatuses, st) {
		return st, nil
	}
	var names []string
	for _, st := range tcbInfoStatuses {
		names = append(names, string(st))
	}
	return "", fmt.Errorf("%w: TCB status %q is not one of %s", ErrPolicy, truncate(s, 40), strings.Join(names, ", "))
}

// Errors of full verification.
var (
	ErrRevoked       = errors.New("dcap: certificate revoked")
	ErrCRL           = errors.New("dcap: CRL")
	ErrTCBInfo       = errors.New("dcap: TCB Info")
	ErrQEIdentity    = errors.New("dcap: QE Identity")
	ErrTCBNotFound   = errors.New("dcap: no TCB level matches the platform")
	ErrStatusRefused = errors.New("dcap: TCB status not accepted by policy")
	ErrPolicy        = errors.New("dcap: invalid policy")
)

// Options of Verify.
type Options struct {
	// Root is the trust anchor, pinned by public key (nil: the Intel SGX
	// Root CA, see IntelRootCA). A test or simulated root is trusted only
	// when given here.
	Root *x509.Certificate
	// Time is the verification time (zero: time.Now()). Certificates,
	// CRLs, TCB Info and QE Identity must all be valid then.
	Time time.Time
	// Accept lists the acceptable TCB statuses (nil: UpToDate only). It may
	// list UpToDate, SWHardeningNeeded, ConfigurationNeeded,
	// ConfigurationAndSWHardeningNeeded, OutOfDate and
	// OutOfDateConfigurationNeeded; Revoked and unknown names are refused
	// with ErrPolicy.
	Accept []TCBStatus
	// PCKChain, if not nil, replaces the chain carried in the quote (needed
	// for certification data types 1 to 3, whose PCK certificate comes
	// separately).
	PCKChain []*x509.Certificate
}

// Result is the outcome of Verify (and VerifyWithoutCollateral).
type Result struct {
	Quote       *Quote         `json:"-"`                             // the parsed quote; nil if it did not parse
	Enclave     sgx.ReportBody `json:"-"`                             // the attested enclave's report body
	TCBStatus   TCBStatus      `json:"tcb_status,omitempty"`          // combined as QVL does; empty if not reached
	AdvisoryIDs []string       `json:"advisory_ids"`                  // of the platform's TCB level and the QE's
	PlatformTCB TCBStatus      `json:"platform_tcb_status,omitempty"` // the matched TCB Info level's status
	QETCB       TCBStatus      `json:"qe_tcb_status,omitempty"`       // the matched QE Identity level's status
	FMSPC       string         `json:"fmspc,omitempty"`               // upper-case hex, from the PCK certificate
	// TCBEvaluationDataNumber is the lower of the TCB Info's and the QE
	// Identity's: how recent Intel's evaluation of the platform is.
	TCBEvaluationDataNumber uint32         `json:"tcb_evaluation_data_number,omitempty"`
	PCK                     *PCKExtensions `json:"-"` // the PCK certificate's SGX extension
	// A TD quote (VerifyTD): the TD's report body, and the status of the
	// TDX module's TCB level (folded into PlatformTCB, the worse of the
	// two).
	TD        *TDReportBody `json:"-"`
	ModuleTCB TCBStatus     `json:"tdx_module_tcb_status,omitempty"`
	Checks    []Check       `json:"checks"` // every check, in order: pass, fail or skip
}

// Verify verifies a quote with Intel collateral, in this order (the names
// of the checks in Result.Checks):
//
//   - parse: the quote parses;
//   - pck_chain, qe_report_signature, qe_report_data, quote_signature: as
//     VerifySignatures, to opts.Root at opts.Time;
//   - pck_extensions: the PCK certificate's SGX extension;
//   - root_ca_crl, pck_crl: each CRL signed by its CA (name and key),
//     current at opts.Time, not revoking the PCK CA or the PCK certificate;
//     pck_crl_issuer_chain, if the collateral has one: the PCK CA to the root;
//   - tcb_info_signature, tcb_info, tcb_info_validity, tcb_info_platform,
//     tcb_level: the TCB Info's signing chain (TCB Signing certificate
//     issued by the root, not revoked), its signature over the exact JSON,
//     its version and validity, FMSPC and PCE-ID equal to the PCK
//     certificate's, and the platform's TCB level (QVL's: levels sorted by
//     SVNs, the first whose 16 SGX component SVNs and PCESVN the PCK
//     certificate's reach);
//   - qe_identity_signature, qe_identity, qe_identity_validity,
//     qe_identity_match: the same for the QE Identity, then MRSIGNER,
//     ISVPRODID, MISCSELECT and ATTRIBUTES under their masks, and the QE's
//     TCB level by ISVSVN;
//   - tcb_status: the platform and QE statuses combined as QVL does, then
//     accepted by opts.Accept.
//
// The Result is returned, filled as far as verification got (later checks
// marked skip), even with an error; the error wraps the failed check's
// sentinel (ErrChain, ErrQuoteSig, ErrCRL, ErrTCBInfo, ...).
func Verify(quote []byte, col *Collateral, opts Options) (*Result, error) {
	return verifyQuote(quote, col, opts, false)
}

// VerifyTD verifies an Intel TDX quote (version 4, TEE type TDX) with TDX
// collateral, as Verify does an SGX quote, with these differences: the TCB
// Info is a TDX one (id TDX), whose platform level must be reached by the
// PCK certificate's SGX components and PCESVN and by the TD's TEE_TCB_SVN
// (its 16 TDX components); the TDX module (MRSIGNERSEAM, SEAMATTRIBUTES
// under the mask) must be the TCB Info's, or, for a module version
// TEE_TCB_SVN[1] above 0, that version's identity (TDX_nn), whose level
// by TEE_TCB_SVN[0] is worsened into the platform's; and the QE Identity
// is the TD quoting enclave's (id TD_QE). Result.TD is the TD's body.
// Whether a debuggable TD is acceptable is the caller's policy.
func VerifyTD(quote []byte, col *Collateral, opts Options) (*Result, error) {
	return verifyQuote(quote, col, opts, true)
}

func verifyQuote(quote []byte, col *Collateral, opts Options, td bool) (*Result, error) {
	res := &Result{AdvisoryIDs: []string{}}
	l := &checklist{names: checkOrder[:]}
	defer func() { res.Checks = l.checks }()
	accept := opts.Accept
	if accept == nil {
		accept = []TCBStatus{UpToDate}
	}
	for _, s := range accept {
		if s == Revoked || !slices.Contains(tcbInfoStatuses, s) {
			return res, fmt.Errorf("%w: Options.Accept lists %q; acceptable are %s", ErrPolicy, truncate(string(s), 40), joinStatuses(tcbInfoStatuses[:6]))
		}
	}
	now := opts.Time
	if now.IsZero() {
		now = time.Now()
	}
	root := opts.Root
	if root == nil {
		root = IntelRootCA()
	}

	parse := ParseQuote
	if td {
		parse = ParseTDQuote
	}
	q, err := parse(quote)
	if err != nil {
		return res, l.fail(CheckParse, err)
	}
	res.Quote, res.Enclave, res.TD = q, q.Body, q.TD
	l.pass(CheckParse, fmt.Sprintf("version %d quote, certification data type %d", q.Header.Version, q.Certification.Type))
	chain, err := q.verifySignatures(l, root, opts.PCKChain, now)
	if err != nil {
		return res, err
	}
	leaf, pckCA, anchor := chain[0], chain[1], chain[2]
	pck, err := ParsePCKExtensions(leaf)
	if err != nil {
		return res, l.fail(CheckPCKExtensions, err)
	}
	res.PCK = pck
	res.FMSPC = strings.ToUpper(hex.EncodeToString(pck.FMSPC[:]))
	l.pass(CheckPCKExtensions, fmt.Sprintf("FMSPC %s, PCE-ID %X, PCESVN %d", res.FMSPC, pck.PCEID[:], pck.PCESVN))
	if col == nil {
		return res, l.fail(CheckRootCACRL, fmt.Errorf("%w: none given (VerifyWithoutCollateral verifies without)", ErrCollateral))
	}

	// CRLs: the root CA's revokes CAs, the PCK CA's revokes PCKs.
	if err := checkCRL(col.RootCACRL, anchor, now, pckCA); err != nil {
		return res, l.fail(CheckRootCACRL, fmt.Errorf("root CA CRL: %w", err))
	}
	l.pass(CheckRootCACRL, fmt.Sprintf("%q not revoked", pckCA.Subject.CommonName))
	if err := checkCRL(col.PCKCRL, pckCA, now, leaf); err != nil {
		return res, l.fail(CheckPCKCRL, fmt.Errorf("PCK CRL: %w", err))
	}
	l.pass(CheckPCKCRL, "PCK certificate not revoked")
	if col.PCKCRLIssuerChain == nil {
		l.skip(CheckPCKCRLIssuerChain, "not given; the CRL was checked against the PCK certificate's own CA")
	} else {
		c, err := verifyChain(col.PCKCRLIssuerChain, root, now, rolePCKCA)
		if err == nil && !bytes.Equal(c[0].Raw, pckCA.Raw) && !(bytes.Equal(c[0].RawSubject, pckCA.RawSubject) && publicKeyEqual(c[0], pckCA)) {
			err = fmt.Errorf("%w: PCK CRL issuer chain is for %q, not the PCK certificate's CA", ErrChain, truncate(c[0].Subject.CommonName, 80))
		}
		if err != nil {
			return res, l.fail(CheckPCKCRLIssuerChain, err)
		}
		l.pass(CheckPCKCRLIssuerChain, "the PCK certificate's CA, to the pinned root")
	}

	// TCB Info.
	if err := checkSignedCollateral(col.TCBInfo, col.TCBInfoSignature, col.TCBInfoIssuerChain, root, col.RootCACRL, now); err != nil {
		return res, l.fail(CheckTCBInfoSignature, fmt.Errorf("%w: %w", ErrTCBInfo, err))
	}
	l.pass(CheckTCBInfoSignature, "by the TCB signing key over the JSON as received")
	parseTI := ParseTCBInfo
	if td {
		parseTI = ParseTDXTCBInfo
	}
	ti, err := parseTI(col.TCBInfo)
	if err != nil {
		return res, l.fail(CheckTCBInfo, fmt.Errorf("%w: %w", ErrTCBInfo, err))
	}
	l.pass(CheckTCBInfo, fmt.Sprintf("version %d, tcbEvaluationDataNumber %d", ti.Version, ti.TCBEvaluationDataNumber))
	if err := checkWindow(ti.IssueDate, ti.NextUpdate, now); err != nil {
		return res, l.fail(CheckTCBInfoValidity, fmt.Errorf("%w: %w", ErrTCBInfo, err))
	}
	l.pass(CheckTCBInfoValidity, windowDetail(ti.IssueDate, ti.NextUpdate))
	if !strings.EqualFold(ti.FMSPC, res.FMSPC) || !strings.EqualFold(ti.PCEID, hex.EncodeToString(pck.PCEID[:])) {
		return res, l.fail(CheckTCBInfoPlatform, fmt.Errorf("%w: for FMSPC %s PCE-ID %s, but the PCK certificate has FMSPC %s PCE-ID %X", ErrTCBInfo, ti.FMSPC, ti.PCEID, res.FMSPC, pck.PCEID[:]))
	}
	l.pass(CheckTCBInfoPlatform, "FMSPC and PCE-ID equal the PCK certificate's")
	level := matchTCB(ti, pck, q.TD)
	if level == nil {
		if td {
			return res, l.fail(CheckTCBLevel, fmt.Errorf("%w: PCK TCB components %v, PCESVN %d, TEE_TCB_SVN %x", ErrTCBNotFound, pck.Components, pck.PCESVN, q.TD.TEETCBSVN))
		}
		return res, l.fail(CheckTCBLevel, fmt.Errorf("%w: PCK TCB components %v, PCESVN %d", ErrTCBNotFound, pck.Components, pck.PCESVN))
	}
	platform, platformAdvisories := level.TCBStatus, level.AdvisoryIDs
	detail := fmt.Sprintf("%s (level of %s)", level.TCBStatus, level.TCBDate.UTC().Format(time.RFC3339))
	if td {
		mod, err := matchTDXModule(ti, q.TD)
		if err != nil {
			return res, l.fail(CheckTCBLevel, err)
		}
		if mod != nil {
			res.ModuleTCB = mod.TCBStatus
			platform, platformAdvisories = worse(platform, mod.TCBStatus), union(platformAdvisories, mod.AdvisoryIDs)
			detail += fmt.Sprintf("; TDX module ISVSVN %d: %s", q.TD.TEETCBSVN[0], mod.TCBStatus)
		}
	}
	res.PlatformTCB = platform
	l.pass(CheckTCBLevel, detail)

	// QE Identity.
	if err := checkSignedCollateral(col.QEIdentity, col.QEIdentitySignature, col.QEIdentityIssuerChain, root, col.RootCACRL, now); err != nil {
		return res, l.fail(CheckQEIdentitySignature, fmt.Errorf("%w: %w", ErrQEIdentity, err))
	}
	l.pass(CheckQEIdentitySignature, "by the TCB signing key over the JSON as received")
	parseQI := ParseQEIdentity
	if td {
		parseQI = ParseTDQEIdentity
	}
	qi, err := parseQI(col.QEIdentity)
	if err != nil {
		return res, l.fail(CheckQEIdentity, fmt.Errorf("%w: %w", ErrQEIdentity, err))
	}
	l.pass(CheckQEIdentity, fmt.Sprintf("version %d, tcbEvaluationDataNumber %d", qi.Version, qi.TCBEvaluationDataNumber))
	if err := checkWindow(qi.IssueDate, qi.NextUpdate, now); err != nil {
		return res, l.fail(CheckQEIdentityValidity, fmt.Errorf("%w: %w", ErrQEIdentity, err))
	}
	l.pass(CheckQEIdentityValidity, windowDetail(qi.IssueDate, qi.NextUpdate))
	qeLevel, err := matchQE(qi, &q.QEReport)
	if err != nil {
		return res, l.fail(CheckQEIdentityMatch, err)
	}
	res.QETCB = qeLevel.TCBStatus
	l.pass(CheckQEIdentityMatch, fmt.Sprintf("ISVSVN %d: %s", q.QEReport.ISVSVN, qeLevel.TCBStatus))

	res.TCBEvaluationDataNumber = min(uint32(ti.TCBEvaluationDataNumber), uint32(qi.TCBEvaluationDataNumber))
	res.TCBStatus = converge(platform, qeLevel.TCBStatus)
	res.AdvisoryIDs = union(platformAdvisories, qeLevel.AdvisoryIDs)
	if res.TCBStatus == Revoked || !slices.Contains(accept, res.TCBStatus) {
		return res, l.fail(CheckTCBStatus, fmt.Errorf("%w: %s (platform %s, QE %s; accepted: %s)", ErrStatusRefused, res.TCBStatus, platform, qeLevel.TCBStatus, joinStatuses(accept)))
	}
	l.pass(CheckTCBStatus, string(res.TCBStatus))
	return res, nil
}

func checkWindow(issue, next, now time.Time) error {
	if now.Before(issue) || now.After(next) {
		return fmt.Errorf("valid %s, not at %s", windowDetail(issue, next), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func windowDetail(from, to time.Time) string {
	return from.UTC().Format(time.RFC3339) + " to " + to.UTC().Format(time.RFC3339)
}

// checkCRL verifies that crl was issued by issuer (name and signature), is
// current at now (thisUpdate <= now <= nextUpdate; a CRL without
// nextUpdate is refused, as it could be replayed forever), and does not
// revoke cert (if not nil).
func checkCRL(crl *x509.RevocationList, issuer *x509.Certificate, now time.Time, cert *x509.Certificate) error {
	if crl == nil {
		return fmt.Errorf("%w: missing", ErrCRL)
	}
	name := truncate(issuer.Subject.CommonName, 80)
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("%w: issued by %q, want %q", ErrCRL, truncate(crl.Issuer.CommonName, 80), name)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("%w: not signed by %q: %v", ErrCRL, name, err)
	}
	if crl.NextUpdate.IsZero() {
		return fmt.Errorf("%w: %q CRL has no nextUpdate", ErrCRL, name)
	}
	if err := checkWindow(crl.ThisUpdate, crl.NextUpdate, now); err != nil {
		return fmt.Errorf("%w: %q CRL %w", ErrCRL, name, err)
	}
	if cert == nil {
		return nil
	}
	for _, r := range crl.RevokedCertificateEntries {
		if r.SerialNumber != nil && r.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return fmt.Errorf("%w: %q (serial %X) by the %q CRL", ErrRevoked, truncate(cert.Subject.CommonName, 80), cert.SerialNumber, name)
		}
	}
	return nil
}

// checkSignedCollateral checks signed JSON: the issuer chain (a TCB
// Signing certificate issued by the root) at now, the signing certificate
// not revoked by the root CA CRL, and the ECDSA signature over the exact
// bytes.
func checkSignedCollateral(body, sig []byte, chain []*x509.Certificate, root *x509.Certificate, rootCRL *x509.RevocationList, now time.Time) error {
	if len(body) == 0 {
		return errors.New("missing")
	}
	if len(sig) != 64 {
		return fmt.Errorf("signature of %d bytes, want 64 (r||s)", len(sig))
	}
	verified, err := verifyChain(chain, root, now, roleTCBSigning)
	if err != nil {
		return err
	}
	if err := checkCRL(rootCRL, verified[1], now, verified[0]); err != nil {
		return fmt.Errorf("root CA CRL: %w", err)
	}
	pub, ok := verified[0].PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return fmt.Errorf("signing key is %T, want ECDSA P-256", verified[0].PublicKey)
	}
	if !verifyP256(pub, body, [64]byte(sig)) {
		return errors.New("signature does not verify over the JSON as received")
	}
	return nil
}

// matchTCB returns the platform's TCB level as Intel's QVL picks it: the
// levels sorted by their SGX component SVNs (lexicographically) then
// PCESVN, highest first, and the first whose every component SVN and
// PCESVN the PCK certificate's reach.
func matchTCB(ti *TCBInfo, pck *PCKExtensions, td *TDReportBody) *TCBLevel {
	levels := make([]*TCBLevel, len(ti.TCBLevels))
	for i := range ti.TCBLevels {
		levels[i] = &ti.TCBLevels[i]
	}
	slices.SortStableFunc(levels, func(a, b *TCBLevel) int {
		if c := slices.Compare(b.TCB.Components[:], a.TCB.Components[:]); c != 0 {
			return c
		}
		if c := cmp.Compare(b.TCB.PCESVN, a.TCB.PCESVN); c != 0 || td == nil {
			return c
		}
		return slices.Compare(b.TCB.TDXComponents[:], a.TCB.TDXComponents[:])
	})
	for _, l := range levels {
		ok := int(pck.PCESVN) >= l.TCB.PCESVN
		for c := range 16 {
			ok = ok && int(pck.Components[c]) >= l.TCB.Components[c]
			// A TD's TEE_TCB_SVN must reach the level's TDX components.
			ok = ok && (td == nil || int(td.TEETCBSVN[c]) >= l.TCB.TDXComponents[c])
		}
		if ok {
			return l
		}
	}
	return nil
}

// matchQE checks the QE report against the QE Identity as QVL does
// (MISCSELECT and ATTRIBUTES of the report under the masks must equal the
// identity's values; MRSIGNER and ISVPRODID must be equal) and returns the
// QE's TCB level: the first, in the order given, whose ISVSVN the QE's
// reaches.
func matchQE(qi *QEIdentity, r *sgx.ReportBody) (*QEIdentityTCB, error) {
	if !bytes.Equal(qi.MRSIGNER, r.MRSIGNER[:]) {
		return nil, fmt.Errorf("%w: QE MRSIGNER %s, want %x", ErrQEIdentity, r.MRSIGNER, []byte(qi.MRSIGNER))
	}
	if qi.ISVProdID != r.ISVProdID {
		return nil, fmt.Errorf("%w: QE ISVPRODID %d, want %d", ErrQEIdentity, r.ISVProdID, qi.ISVProdID)
	}
	le := binary.LittleEndian
	if r.MiscSelect&le.Uint32(qi.MiscSelectMask) != le.Uint32(qi.MiscSelect) {
		return nil, fmt.Errorf("%w: QE MISCSELECT %#08x under mask %x is not %x", ErrQEIdentity, r.MiscSelect, []byte(qi.MiscSelectMask), []byte(qi.MiscSelect))
	}
	var attrs [16]byte
	le.PutUint64(attrs[0:], r.Attributes.Flags)
	le.PutUint64(attrs[8:], r.Attributes.Xfrm)
	for i := range attrs {
		if attrs[i]&qi.AttributesMask[i] != qi.Attributes[i] {
			return nil, fmt.Errorf("%w: QE ATTRIBUTES %x under mask %x are not %x (byte %d)", ErrQEIdentity, attrs, []byte(qi.AttributesMask), []byte(qi.Attributes), i)
		}
	}
	for i := range qi.TCBLevels {
		if r.ISVSVN >= qi.TCBLevels[i].TCB.ISVSVN {
			return &qi.TCBLevels[i], nil
		}
	}
	return nil, fmt.Errorf("%w: QE ISVSVN %d is below every TCB level (not supported)", ErrQEIdentity, r.ISVSVN)
}

// matchTDXModule checks the TD's TDX module against the TDX TCB Info as
// Intel's QVL does: for module version TEE_TCB_SVN[1] above 0 with
// identities listed, the identity TDX_nn (nn that version in upper-case
// hex) gives the expected signer and attributes and a TCB level by the
// module's ISVSVN (TEE_TCB_SVN[0]); else the TCB Info's tdxModule gives
// them, with no level. MRSIGNERSEAM must equal the signer; SEAMATTRIBUTES
// must equal the attributes under the mask and have no bit outside it.
func matchTDXModule(ti *TCBInfo, td *TDReportBody) (*QEIdentityTCB, error) {
	m := ti.TDXModule
	var levels []QEIdentityTCB
	if version := td.TEETCBSVN[1]; version > 0 && len(ti.TDXModuleIdentities) > 0 {
		want := fmt.Sprintf("TDX_%02X", version)
		i := slices.IndexFunc(ti.TDXModuleIdentities, func(x TDXModuleIdentity) bool { return strings.EqualFold(x.ID, want) })
		if i < 0 {
			return nil, fmt.Errorf("%w: no TDX module identity %s in the TCB Info", ErrTCBNotFound, want)
		}
		m, levels = &ti.TDXModuleIdentities[i].TDXModule, ti.TDXModuleIdentities[i].TCBLevels
	}
	if !bytes.Equal(m.MRSIGNER, td.MRSignerSEAM[:]) {
		return nil, fmt.Errorf("%w: TDX module MRSIGNERSEAM %x, want %x", ErrTCBInfo, td.MRSignerSEAM[:], []byte(m.MRSIGNER))
	}
	var attrs [8]byte
	binary.LittleEndian.PutUint64(attrs[:], td.SEAMAttributes)
	for i := range attrs {
		if attrs[i]&m.AttributesMask[i] != m.Attributes[i]&m.AttributesMask[i] || attrs[i]&^m.AttributesMask[i] != 0 {
			return nil, fmt.Errorf("%w: TDX module SEAMATTRIBUTES %x, want %x under mask %x", ErrTCBInfo, attrs, []byte(m.Attributes), []byte(m.AttributesMask))
		}
	}
	if levels == nil {
		return nil, nil
	}
	for i := range levels {
		if uint16(td.TEETCBSVN[0]) >= levels[i].TCB.ISVSVN {
			return &levels[i], nil
		}
	}
	return nil, fmt.Errorf("%w: TDX module ISVSVN %d is below every level of %s", ErrTCBNotFound, td.TEETCBSVN[0], fmt.Sprintf("TDX_%02X", td.TEETCBSVN[1]))
}

// worse returns the worse of two TCB statuses, in the order of
// tcbInfoStatuses (UpToDate best, Revoked worst).
func worse(a, b TCBStatus) TCBStatus {
	if slices.Index(tcbInfoStatuses, b) > slices.Index(tcbInfoStatuses, a) {
		return b
	}
	return a
}

// converge combines the platform's and the QE's TCB statuses as Intel's
// QVL does: a QE status other than UpToDate and Revoked counts as
// OutOfDate, which makes an UpToDate or SWHardeningNeeded platform
// OutOfDate and a ConfigurationNeeded or ConfigurationAndSWHardeningNeeded
// one OutOfDateConfigurationNeeded; a Revoked QE makes it Revoked.
func converge(platform, qe TCBStatus) TCBStatus {
	switch qe {
	case UpToDate:
		return platform
	case Revoked:
		return Revoked
	}
	switch platform {
	case UpToDate, SWHardeningNeeded:
		return OutOfDate
	case ConfigurationNeeded, ConfigurationAndSWHardeningNeeded:
		return OutOfDateConfigurationNeeded
	}
	return platform
}

func union(a, b []string) []string {
	out := []string{}
	for _, x := range append(slices.Clone(a), b...) {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func joinStatuses(s []TCBStatus) string {
	var b strings.Builder
	for i, x := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(x))
	}
	return b.String()
}
