package dcap

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrCollateral is wrapped by every collateral parsing error.
var ErrCollateral = errors.New("dcap: collateral")

// Collateral is what Intel's PCS (or a PCCS) provides to judge a quote's
// platform: TCB Info and QE Identity with their signatures and issuer
// chains, and the CRLs. The signed JSON is kept exactly as received: the
// signatures cover those bytes, and nothing is re-serialized.
type Collateral struct {
	TCBInfo               []byte               // the "tcbInfo" JSON value, exact bytes
	TCBInfoSignature      []byte               // 64 bytes, ECDSA P-256 r||s over TCBInfo
	TCBInfoIssuerChain    []*x509.Certificate  // TCB Signing certificate and root, any order
	QEIdentity            []byte               // the "enclaveIdentity" JSON value, exact bytes
	QEIdentitySignature   []byte               // 64 bytes, ECDSA P-256 r||s over QEIdentity
	QEIdentityIssuerChain []*x509.Certificate  // TCB Signing certificate and root, any order
	PCKCRL                *x509.RevocationList // the PCK Platform or Processor CA's CRL
	PCKCRLIssuerChain     []*x509.Certificate  // optional; checked when given
	RootCACRL             *x509.RevocationList // the root CA's CRL
}

// ParseCollateralBundle reads collateral as one JSON object with the
// fields tcb_info, tcb_info_signature, tcb_info_issuer_chain, qe_identity,
// qe_identity_signature, qe_identity_issuer_chain, pck_crl, root_ca_crl
// and, optionally, pck_crl_issuer_chain (the shape of Phala's dcap-qvl
// collateral). CRLs are hex DER or PEM, chains PEM, signatures hex r||s.
// tcb_info and qe_identity are JSON strings holding the exact signed text;
// a JSON object is accepted too and kept byte for byte as it appears in b.
// Other fields are ignored.
func ParseCollateralBundle(b []byte) (*Collateral, error) {
	var j map[string]json.RawMessage
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: bundle: %v", ErrCollateral, err)
	}
	c := &Collateral{}
	var err error
	field := func(k string, optional bool, parse func(raw json.RawMessage, s string) error) {
		if err != nil {
			return
		}
		raw, ok := j[k]
		if !ok {
			if !optional {
				err = fmt.Errorf("%w: bundle lacks %q", ErrCollateral, k)
			}
			return
		}
		var s string
		if e := json.Unmarshal(raw, &s); e != nil && !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			err = fmt.Errorf("%w: bundle field %q is not a string", ErrCollateral, k)
			return
		}
		if e := parse(raw, s); e != nil {
			err = fmt.Errorf("%w: bundle field %q: %w", ErrCollateral, k, e)
		}
	}
	signed := func(dst *[]byte) func(json.RawMessage, string) error {
		return func(raw json.RawMessage, s string) error {
			if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
				*dst = bytes.Clone(t)
			} else {
				*dst = []byte(s)
			}
			if !json.Valid(*dst) {
				return errors.New("not valid JSON")
			}
			return nil
		}
	}
	str := func(f func(string) error) func(json.RawMessage, string) error {
		return func(raw json.RawMessage, s string) error {
			if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
				return errors.New("is an object, want a string")
			}
			return f(s)
		}
	}
	chain := func(dst *[]*x509.Certificate) func(json.RawMessage, string) error {
		return str(func(s string) (e error) { *dst, e = ParseCertChain([]byte(s)); return })
	}
	crl := func(dst **x509.RevocationList) func(json.RawMessage, string) error {
		return str(func(s string) (e error) { *dst, e = ParseCRL([]byte(s)); return })
	}
	sig := func(dst *[]byte) func(json.RawMessage, string) error {
		return str(func(s string) (e error) { *dst, e = parseSig(s); return })
	}
	field("tcb_info", false, signed(&c.TCBInfo))
	field("tcb_info_signature", false, sig(&c.TCBInfoSignature))
	field("tcb_info_issuer_chain", false, chain(&c.TCBInfoIssuerChain))
	field("qe_identity", false, signed(&c.QEIdentity))
	field("qe_identity_signature", false, sig(&c.QEIdentitySignature))
	field("qe_identity_issuer_chain", false, chain(&c.QEIdentityIssuerChain))
	field("pck_crl", false, crl(&c.PCKCRL))
	field("pck_crl_issuer_chain", true, chain(&c.PCKCRLIssuerChain))
	field("root_ca_crl", false, crl(&c.RootCACRL))
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parseSig(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 64 {
		return nil, fmt.Errorf("signature: want 128 hex digits (r||s), got %d characters", len(s))
	}
	return b, nil
}

// ParseCRL reads a CRL in DER, PEM ("X509 CRL"), or hex-encoded DER (as
// PCCS bundles carry it).
func ParseCRL(b []byte) (*x509.RevocationList, error) {
	t := bytes.TrimSpace(b)
	switch {
	case bytes.HasPrefix(t, []byte("-----BEGIN")):
		blk, rest := pem.Decode(t)
		if blk == nil {
			return nil, fmt.Errorf("%w: CRL: malformed PEM", ErrCollateral)
		}
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("%w: CRL: PEM block %q, want X509 CRL", ErrCollateral, truncate(blk.Type, 40))
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("%w: CRL: %d bytes after the PEM block", ErrCollateral, len(rest))
		}
		b = blk.Bytes
	case len(t) > 0 && t[0] != 0x30:
		h, err := hex.DecodeString(string(t))
		if err != nil {
			return nil, fmt.Errorf("%w: CRL: neither DER, PEM nor hex: %v", ErrCollateral, err)
		}
		b = h
	}
	l, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, fmt.Errorf("%w: CRL: %v", ErrCollateral, err)
	}
	return l, nil
}

// ParseSignedJSON splits a PCS response ({"tcbInfo": {...}, "signature":
// "hex"} or {"enclaveIdentity": {...}, "signature": "hex"}) into the exact
// bytes of the signed value and the 64-byte signature. A document without
// either key is returned whole (trimmed of surrounding space) with a nil
// signature, for callers that have the signature separately.
func ParseSignedJSON(b []byte) (body, sig []byte, err error) {
	var j map[string]json.RawMessage
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCollateral, err)
	}
	_, hasTCB := j["tcbInfo"]
	_, hasQE := j["enclaveIdentity"]
	if hasTCB && hasQE {
		return nil, nil, fmt.Errorf("%w: both tcbInfo and enclaveIdentity in one document", ErrCollateral)
	}
	for _, k := range []string{"tcbInfo", "enclaveIdentity"} {
		v, ok := j[k]
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal(j["signature"], &s); err != nil {
			return nil, nil, fmt.Errorf("%w: %q without a \"signature\" string", ErrCollateral, k)
		}
		sig, err := parseSig(s)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrCollateral, err)
		}
		return bytes.Clone(v), sig, nil
	}
	return bytes.Clone(bytes.TrimSpace(b)), nil, nil
}

// TCBInfo is Intel's TCB Info (version 2 or 3) for one FMSPC.
//
// Dates are RFC 3339; TCBLevels are as Intel lists them (Verify sorts a
// copy as QVL does before matching).
type TCBInfo struct {
	ID                      string     `json:"id"` // version 3: "SGX", or "TDX" (ParseTDXTCBInfo)
	Version                 int        `json:"version"`
	IssueDate               time.Time  `json:"issueDate"`
	NextUpdate              time.Time  `json:"nextUpdate"`
	FMSPC                   string     `json:"fmspc"` // 12 hex digits
	PCEID                   string     `json:"pceId"` // 4 hex digits
	TCBType                 int        `json:"tcbType"`
	TCBEvaluationDataNumber int        `json:"tcbEvaluationDataNumber"`
	TCBLevels               []TCBLevel `json:"tcbLevels"`
	// A TDX TCB Info's TDX module: its signer and SEAM attributes, and the
	// identities of its versions, each with TCB levels by ISVSVN.
	TDXModule           *TDXModule          `json:"tdxModule,omitempty"`
	TDXModuleIdentities []TDXModuleIdentity `json:"tdxModuleIdentities,omitempty"`
}

// TDXModule is the TDX module a TDX TCB Info expects.
type TDXModule struct {
	MRSIGNER       HexBytes `json:"mrsigner"`       // 48 bytes
	Attributes     HexBytes `json:"attributes"`     // 8 bytes
	AttributesMask HexBytes `json:"attributesMask"` // 8 bytes
}

// TDXModuleIdentity is one version of the TDX module ("TDX_01", ...).
type TDXModuleIdentity struct {
	ID string `json:"id"`
	TDXModule
	TCBLevels []QEIdentityTCB `json:"tcbLevels"`
}

// TCBLevel is one TCB level of a TCB Info.
// TCBStatus is one of the TCB status constants; AdvisoryIDs name the
// Intel security advisories that apply at this level.
type TCBLevel struct {
	TCB         TCB       `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   TCBStatus `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs"`
}

// TCB is the SGX TCB of a level: 16 component SVNs and the PCESVN; in a
// TDX TCB Info, also the 16 TDX component SVNs the TEE_TCB_SVN of a TD
// quote is compared with.
type TCB struct {
	Components    [16]int // sgxtcbcomp01svn .. sgxtcbcomp16svn, 0 to 255
	PCESVN        int     // 0 to 65535
	TDXComponents [16]int // tdxtcbcomponents
	HasTDX        bool    // the level has tdxtcbcomponents
}

// UnmarshalJSON accepts both the version 2 form (sgxtcbcomp01svn ..
// sgxtcbcomp16svn, pcesvn) and the version 3 form (sgxtcbcomponents, an
// array of 16 objects with "svn", and pcesvn). SVNs must be in range.
func (t *TCB) UnmarshalJSON(b []byte) error {
	var j map[string]json.RawMessage
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	svn := func(raw json.RawMessage, what string, max int) (int, error) {
		var v int
		if raw == nil {
			return 0, fmt.Errorf("tcb.%s is missing", what)
		}
		if err := json.Unmarshal(raw, &v); err != nil || v < 0 || v > max {
			return 0, fmt.Errorf("tcb.%s is %.20s, want an integer 0 to %d", what, raw, max)
		}
		return v, nil
	}
	var err error
	if t.PCESVN, err = svn(j["pcesvn"], "pcesvn", 0xffff); err != nil {
		return err
	}
	// components reads a version 3 array of 16 objects with "svn".
	components := func(raw json.RawMessage, what string, into *[16]int) error {
		var comps []struct {
			SVN json.RawMessage `json:"svn"`
		}
		if err := json.Unmarshal(raw, &comps); err != nil || len(comps) != 16 {
			return fmt.Errorf("tcb.%s: want an array of 16 components", what)
		}
		for i, c := range comps {
			var err error
			if into[i], err = svn(c.SVN, fmt.Sprintf("%s[%d].svn", what, i), 0xff); err != nil {
				return err
			}
		}
		return nil
	}
	if v, ok := j["sgxtcbcomponents"]; ok {
		if err := components(v, "sgxtcbcomponents", &t.Components); err != nil {
			return err
		}
		if v, ok := j["tdxtcbcomponents"]; ok {
			if err := components(v, "tdxtcbcomponents", &t.TDXComponents); err != nil {
				return err
			}
			t.HasTDX = true
		}
		return nil
	}
	for i := range 16 {
		k := fmt.Sprintf("sgxtcbcomp%02dsvn", i+1)
		if t.Components[i], err = svn(j[k], k, 0xff); err != nil {
			return err
		}
	}
	return nil
}

// tcbInfoStatuses are the TCB statuses a TCB Info level may have.
var tcbInfoStatuses = []TCBStatus{UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, Revoked}

// ParseTCBInfo decodes the signed TCB Info JSON (the value of "tcbInfo").
// It refuses versions other than 2 and 3, a version 3 id other than "SGX",
// a tcbType other than 0, malformed FMSPC or PCE-ID, no levels, and TCB
// statuses it does not know.
func ParseTCBInfo(b []byte) (*TCBInfo, error) { return parseTCBInfo(b, "SGX") }

// ParseTDXTCBInfo decodes a TDX TCB Info (version 3, id "TDX"): every
// level has TDX components, and the TDX module's signer and attributes
// are given (and its identities, if any, well formed).
func ParseTDXTCBInfo(b []byte) (*TCBInfo, error) { return parseTCBInfo(b, "TDX") }

func parseTCBInfo(b []byte, id string) (*TCBInfo, error) {
	var t TCBInfo
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: TCB Info: %v", ErrCollateral, err)
	}
	bad := func(format string, a ...any) (*TCBInfo, error) {
		return nil, fmt.Errorf("%w: TCB Info: %s", ErrCollateral, fmt.Sprintf(format, a...))
	}
	if t.Version != 2 && t.Version != 3 {
		return bad("version %d, want 2 or 3", t.Version)
	}
	if (t.Version == 3 || id == "TDX") && t.ID != id {
		return bad("id %q, want %s", truncate(t.ID, 20), id)
	}
	if id == "TDX" {
		if t.Version != 3 {
			return bad("a TDX TCB Info of version %d, want 3", t.Version)
		}
		mods := []*TDXModule{t.TDXModule}
		for i := range t.TDXModuleIdentities {
			mods = append(mods, &t.TDXModuleIdentities[i].TDXModule)
			if len(t.TDXModuleIdentities[i].TCBLevels) == 0 {
				return bad("tdxModuleIdentities[%d] has no TCB levels", i)
			}
		}
		for i, m := range mods {
			if m == nil || len(m.MRSIGNER) != 48 || len(m.Attributes) != 8 || len(m.AttributesMask) != 8 {
				return bad("TDX module %d: want a 48-byte mrsigner, 8-byte attributes and attributesMask", i)
			}
		}
		for i, l := range t.TCBLevels {
			if !l.TCB.HasTDX {
				return bad("tcbLevels[%d] has no tdxtcbcomponents", i)
			}
		}
	} else if t.TDXModule != nil || t.TDXModuleIdentities != nil {
		return bad("an SGX TCB Info with a TDX module")
	}
	if t.TCBType != 0 {
		return bad("tcbType %d, want 0", t.TCBType)
	}
	if f, err := hex.DecodeString(t.FMSPC); err != nil || len(f) != 6 {
		return bad("fmspc %q, want 12 hex digits", truncate(t.FMSPC, 20))
	}
	if p, err := hex.DecodeString(t.PCEID); err != nil || len(p) != 2 {
		return bad("pceId %q, want 4 hex digits", truncate(t.PCEID, 20))
	}
	if t.IssueDate.IsZero() || t.NextUpdate.IsZero() {
		return bad("issueDate or nextUpdate missing")
	}
	if len(t.TCBLevels) == 0 {
		return bad("no TCB levels")
	}
	for i, l := range t.TCBLevels {
		if !slices.Contains(tcbInfoStatuses, l.TCBStatus) {
			return bad("tcbLevels[%d].tcbStatus %q is unknown", i, truncate(string(l.TCBStatus), 40))
		}
	}
	return &t, nil
}

// QEIdentity is Intel's identity of the quoting enclave (version 2).
type QEIdentity struct {
	ID                      string          `json:"id"` // "QE"
	Version                 int             `json:"version"`
	IssueDate               time.Time       `json:"issueDate"`
	NextUpdate              time.Time       `json:"nextUpdate"`
	MiscSelect              HexBytes        `json:"miscselect"`     // 4 bytes
	MiscSelectMask          HexBytes        `json:"miscselectMask"` // 4 bytes
	Attributes              HexBytes        `json:"attributes"`     // 16 bytes
	AttributesMask          HexBytes        `json:"attributesMask"` // 16 bytes
	MRSIGNER                HexBytes        `json:"mrsigner"`       // 32 bytes
	ISVProdID               uint16          `json:"isvprodid"`
	TCBLevels               []QEIdentityTCB `json:"tcbLevels"`
	TCBEvaluationDataNumber int             `json:"tcbEvaluationDataNumber"`
}

// QEIdentityTCB is one TCB level of a QE Identity.
// The QE's level is the first whose ISVSVN the QE report's reaches.
type QEIdentityTCB struct {
	TCB struct {
		ISVSVN uint16 `json:"isvsvn"`
	} `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   TCBStatus `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs"`
}

// HexBytes is a byte string written in JSON as hex digits.
type HexBytes []byte

// UnmarshalJSON decodes a JSON string of hex digits.
func (h *HexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("hex: %v", err)
	}
	*h = d
	return nil
}

// MarshalJSON encodes the bytes as a JSON string of upper-case hex digits.
func (h HexBytes) MarshalJSON() ([]byte, error) {
	return json.Marshal(strings.ToUpper(hex.EncodeToString(h)))
}

// ParseQEIdentity decodes the signed QE Identity JSON (the value of
// "enclaveIdentity"). It refuses versions other than 2, ids other than
// "QE" (a QVE or TD_QE identity does not describe an SGX quoting enclave),
// fields of the wrong size, no levels, and TCB statuses it does not know.
func ParseQEIdentity(b []byte) (*QEIdentity, error) { return parseQEIdentity(b, "QE") }

// ParseTDQEIdentity decodes the identity of the TD quoting enclave (id
// TD_QE, version 2), which signs TD quotes.
func ParseTDQEIdentity(b []byte) (*QEIdentity, error) { return parseQEIdentity(b, "TD_QE") }

func parseQEIdentity(b []byte, id string) (*QEIdentity, error) {
	var q QEIdentity
	if err := json.Unmarshal(b, &q); err != nil {
		return nil, fmt.Errorf("%w: QE Identity: %v", ErrCollateral, err)
	}
	bad := func(format string, a ...any) (*QEIdentity, error) {
		return nil, fmt.Errorf("%w: QE Identity: %s", ErrCollateral, fmt.Sprintf(format, a...))
	}
	if q.Version != 2 {
		return bad("version %d, want 2", q.Version)
	}
	if q.ID != id {
		return bad("id %q, want %s", truncate(q.ID, 20), id)
	}
	for _, f := range []struct {
		name string
		b    []byte
		n    int
	}{{"miscselect", q.MiscSelect, 4}, {"miscselectMask", q.MiscSelectMask, 4}, {"attributes", q.Attributes, 16}, {"attributesMask", q.AttributesMask, 16}, {"mrsigner", q.MRSIGNER, 32}} {
		if len(f.b) != f.n {
			return bad("%s has %d bytes, want %d", f.name, len(f.b), f.n)
		}
	}
	if q.IssueDate.IsZero() || q.NextUpdate.IsZero() {
		return bad("issueDate or nextUpdate missing")
	}
	if len(q.TCBLevels) == 0 {
		return bad("no TCB levels")
	}
	for i, l := range q.TCBLevels {
		if !slices.Contains(tcbInfoStatuses, l.TCBStatus) {
			return bad("tcbLevels[%d].tcbStatus %q is unknown", i, truncate(string(l.TCBStatus), 40))
		}
	}
	return &q, nil
}

func isOneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// MarshalBundle encodes the collateral as the JSON bundle that
// ParseCollateralBundle reads: the signed JSON as exact strings, hex
// signatures and CRLs (DER), PEM chains.
func (c *Collateral) MarshalBundle() ([]byte, error) {
	if c.PCKCRL == nil || c.RootCACRL == nil {
		return nil, fmt.Errorf("%w: a bundle needs both CRLs", ErrCollateral)
	}
	chain := func(cs []*x509.Certificate) string {
		var b strings.Builder
		for _, x := range cs {
			b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw}))
		}
		return b.String()
	}
	m := map[string]string{
		"tcb_info":                 string(c.TCBInfo),
		"tcb_info_signature":       hex.EncodeToString(c.TCBInfoSignature),
		"tcb_info_issuer_chain":    chain(c.TCBInfoIssuerChain),
		"qe_identity":              string(c.QEIdentity),
		"qe_identity_signature":    hex.EncodeToString(c.QEIdentitySignature),
		"qe_identity_issuer_chain": chain(c.QEIdentityIssuerChain),
		"pck_crl":                  hex.EncodeToString(c.PCKCRL.Raw),
		"root_ca_crl":              hex.EncodeToString(c.RootCACRL.Raw),
	}
	if c.PCKCRLIssuerChain != nil {
		m["pck_crl_issuer_chain"] = chain(c.PCKCRLIssuerChain)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
