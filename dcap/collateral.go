package dcap

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrCollateral is wrapped by every collateral parsing error.
var ErrCollateral = errors.New("dcap: collateral")

// Collateral is what Intel's PCS (or a PCCS) provides to judge a quote's
// platform: TCB Info and QE Identity with their signatures and issuer
// chains, and the CRLs. The signed JSON is kept exactly as received.
type Collateral struct {
	TCBInfo               []byte // the "tcbInfo" JSON value, exact bytes
	TCBInfoSignature      []byte // 64 bytes, ECDSA P-256 r||s
	TCBInfoIssuerChain    []*x509.Certificate
	QEIdentity            []byte // the "enclaveIdentity" JSON value, exact bytes
	QEIdentitySignature   []byte
	QEIdentityIssuerChain []*x509.Certificate
	PCKCRL                *x509.RevocationList
	PCKCRLIssuerChain     []*x509.Certificate
	RootCACRL             *x509.RevocationList
}

// ParseCollateralBundle reads collateral as one JSON object with the fields
// pck_crl_issuer_chain, root_ca_crl, pck_crl, tcb_info_issuer_chain,
// tcb_info, tcb_info_signature, qe_identity_issuer_chain, qe_identity and
// qe_identity_signature (CRLs in hex DER or PEM, chains in PEM, signatures
// in hex, TCB Info and QE Identity as the exact signed JSON text).
func ParseCollateralBundle(b []byte) (*Collateral, error) {
	var j map[string]json.RawMessage
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: bundle: %v", ErrCollateral, err)
	}
	str := func(k string) (string, error) {
		v, ok := j[k]
		if !ok {
			return "", fmt.Errorf("%w: bundle lacks %q", ErrCollateral, k)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("%w: bundle field %q is not a string", ErrCollateral, k)
		}
		return s, nil
	}
	c := &Collateral{}
	var err error
	get := func(k string, f func(string) error) {
		if err != nil {
			return
		}
		var s string
		if s, err = str(k); err == nil {
			if e := f(s); e != nil {
				err = fmt.Errorf("%w: bundle field %q: %v", ErrCollateral, k, e)
			}
		}
	}
	chain := func(dst *[]*x509.Certificate) func(string) error {
		return func(s string) (e error) { *dst, e = ParseCertChain([]byte(s)); return }
	}
	crl := func(dst **x509.RevocationList) func(string) error {
		return func(s string) (e error) { *dst, e = ParseCRL([]byte(s)); return }
	}
	sig := func(dst *[]byte) func(string) error {
		return func(s string) (e error) { *dst, e = parseSig(s); return }
	}
	get("tcb_info", func(s string) error { c.TCBInfo = []byte(s); return nil })
	get("tcb_info_signature", sig(&c.TCBInfoSignature))
	get("tcb_info_issuer_chain", chain(&c.TCBInfoIssuerChain))
	get("qe_identity", func(s string) error { c.QEIdentity = []byte(s); return nil })
	get("qe_identity_signature", sig(&c.QEIdentitySignature))
	get("qe_identity_issuer_chain", chain(&c.QEIdentityIssuerChain))
	get("pck_crl", crl(&c.PCKCRL))
	get("pck_crl_issuer_chain", chain(&c.PCKCRLIssuerChain))
	get("root_ca_crl", crl(&c.RootCACRL))
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parseSig(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 64 {
		return nil, fmt.Errorf("signature: want 64 bytes of hex (r||s), got %q", s)
	}
	return b, nil
}

// ParseCRL reads a CRL in DER, PEM, or hex-encoded DER.
func ParseCRL(b []byte) (*x509.RevocationList, error) {
	b = bytes.TrimSpace(b)
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	} else if h, err := hex.DecodeString(string(b)); err == nil {
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
// bytes of the signed value and the signature. A bare object (no wrapper)
// is returned as is with a nil signature.
func ParseSignedJSON(b []byte) (body, sig []byte, err error) {
	var j map[string]json.RawMessage
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCollateral, err)
	}
	for _, k := range []string{"tcbInfo", "enclaveIdentity"} {
		if v, ok := j[k]; ok {
			var s string
			if err := json.Unmarshal(j["signature"], &s); err != nil {
				return nil, nil, fmt.Errorf("%w: %q without a signature string", ErrCollateral, k)
			}
			sig, err := parseSig(s)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: %v", ErrCollateral, err)
			}
			return []byte(v), sig, nil
		}
	}
	return bytes.TrimSpace(b), nil, nil
}

// TCBInfo is Intel's TCB Info (version 2 or 3) for one FMSPC.
type TCBInfo struct {
	ID                      string     `json:"id"`
	Version                 int        `json:"version"`
	IssueDate               time.Time  `json:"issueDate"`
	NextUpdate              time.Time  `json:"nextUpdate"`
	FMSPC                   string     `json:"fmspc"`
	PCEID                   string     `json:"pceId"`
	TCBType                 int        `json:"tcbType"`
	TCBEvaluationDataNumber int        `json:"tcbEvaluationDataNumber"`
	TCBLevels               []TCBLevel `json:"tcbLevels"`
}

// TCBLevel is one TCB level of a TCB Info.
type TCBLevel struct {
	TCB         TCB       `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   string    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs"`
}

// TCB is the SGX TCB of a level: 16 component SVNs and the PCESVN.
type TCB struct {
	Components [16]int
	PCESVN     int
}

// UnmarshalJSON accepts both the version 2 form (sgxtcbcompNNsvn) and the
// version 3 form (sgxtcbcomponents).
func (t *TCB) UnmarshalJSON(b []byte) error {
	var j map[string]json.RawMessage
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if err := json.Unmarshal(j["pcesvn"], &t.PCESVN); err != nil {
		return fmt.Errorf("tcb.pcesvn: %v", err)
	}
	if v, ok := j["sgxtcbcomponents"]; ok {
		var comps []struct {
			SVN int `json:"svn"`
		}
		if err := json.Unmarshal(v, &comps); err != nil || len(comps) != 16 {
			return fmt.Errorf("tcb.sgxtcbcomponents: want 16 components")
		}
		for i, c := range comps {
			t.Components[i] = c.SVN
		}
		return nil
	}
	for i := range 16 {
		k := fmt.Sprintf("sgxtcbcomp%02dsvn", i+1)
		if err := json.Unmarshal(j[k], &t.Components[i]); err != nil {
			return fmt.Errorf("tcb.%s: %v", k, err)
		}
	}
	return nil
}

// ParseTCBInfo decodes the signed TCB Info JSON.
func ParseTCBInfo(b []byte) (*TCBInfo, error) {
	var t TCBInfo
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: TCB Info: %v", ErrCollateral, err)
	}
	if t.Version != 2 && t.Version != 3 {
		return nil, fmt.Errorf("%w: TCB Info version %d, want 2 or 3", ErrCollateral, t.Version)
	}
	if t.Version == 3 && t.ID != "SGX" {
		return nil, fmt.Errorf("%w: TCB Info id %q, want SGX", ErrCollateral, t.ID)
	}
	if len(t.TCBLevels) == 0 {
		return nil, fmt.Errorf("%w: TCB Info has no TCB levels", ErrCollateral)
	}
	return &t, nil
}

// QEIdentity is Intel's identity of the quoting enclave (version 2).
type QEIdentity struct {
	ID                      string          `json:"id"`
	Version                 int             `json:"version"`
	IssueDate               time.Time       `json:"issueDate"`
	NextUpdate              time.Time       `json:"nextUpdate"`
	MiscSelect              hexBytes        `json:"miscselect"`
	MiscSelectMask          hexBytes        `json:"miscselectMask"`
	Attributes              hexBytes        `json:"attributes"`
	AttributesMask          hexBytes        `json:"attributesMask"`
	MRSIGNER                hexBytes        `json:"mrsigner"`
	ISVProdID               uint16          `json:"isvprodid"`
	TCBLevels               []QEIdentityTCB `json:"tcbLevels"`
	TCBEvaluationDataNumber int             `json:"tcbEvaluationDataNumber"`
}

// QEIdentityTCB is one TCB level of a QE Identity.
type QEIdentityTCB struct {
	TCB struct {
		ISVSVN uint16 `json:"isvsvn"`
	} `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   string    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs"`
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = d
	return nil
}

// ParseQEIdentity decodes the signed QE Identity JSON.
func ParseQEIdentity(b []byte) (*QEIdentity, error) {
	var q QEIdentity
	if err := json.Unmarshal(b, &q); err != nil {
		return nil, fmt.Errorf("%w: QE Identity: %v", ErrCollateral, err)
	}
	if q.Version != 2 {
		return nil, fmt.Errorf("%w: QE Identity version %d, want 2", ErrCollateral, q.Version)
	}
	if q.ID != "QE" && q.ID != "" {
		return nil, fmt.Errorf("%w: QE Identity id %q, want QE", ErrCollateral, q.ID)
	}
	if len(q.MiscSelect) != 4 || len(q.MiscSelectMask) != 4 || len(q.Attributes) != 16 || len(q.AttributesMask) != 16 || len(q.MRSIGNER) != 32 {
		return nil, fmt.Errorf("%w: QE Identity field sizes", ErrCollateral)
	}
	if len(q.TCBLevels) == 0 {
		return nil, fmt.Errorf("%w: QE Identity has no TCB levels", ErrCollateral)
	}
	return &q, nil
}
