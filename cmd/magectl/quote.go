package main

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/sgx"
)

func runQuote(e *env, args []string) error {
	return dispatch(e, args, "quote", `Usage: magectl quote <show|verify> QUOTE [flags]

  show QUOTE     print a DCAP quote's fields (nothing is verified)
  verify QUOTE   verify a quote: with Intel collateral (--collateral, or
                 the PCS files), or its signatures only (--no-collateral)

Run "magectl quote <command> --help" for flags.
`, map[string]func(*env, []string) error{"show": runQuoteShow, "verify": runQuoteVerify})
}

// reportView is a report body for printing: the identity in its one JSON
// shape, plus what a report carries besides.
type reportView struct {
	Identity   sgx.Identity `json:"identity"`
	CPUSVN     string       `json:"cpusvn"`
	Debug      bool         `json:"debug"`
	ReportData string       `json:"report_data"`
}

func viewReport(r *dcap.ReportBody) reportView {
	return reportView{Identity: r.Identity(), CPUSVN: hex.EncodeToString(r.CPUSVN[:]), Debug: r.Attributes.Debug(),
		ReportData: hex.EncodeToString(r.ReportData[:])}
}

type quoteView struct {
	Version      uint16      `json:"version"`
	AttKeyType   uint16      `json:"att_key_type"`
	TEEType      uint32      `json:"tee_type"`
	QESVN        uint16      `json:"qe_svn"`
	PCESVN       uint16      `json:"pce_svn"`
	QEVendorID   string      `json:"qe_vendor_id"`
	UserData     string      `json:"user_data"`
	Enclave      *reportView `json:"enclave,omitempty"` // an SGX quote's enclave
	TD           *tdView     `json:"td,omitempty"`      // a TDX quote's TD
	QE           reportView  `json:"qe"`
	QEAuthData   string      `json:"qe_auth_data"`
	AttestKey    string      `json:"attestation_key"`
	CertDataType uint16      `json:"certification_data_type"`
	PCKChain     []string    `json:"pck_chain,omitempty"`
	FMSPC        string      `json:"fmspc,omitempty"`
	PCEID        string      `json:"pce_id,omitempty"`
	PPID         string      `json:"ppid,omitempty"`
	PCKCPUSVN    string      `json:"pck_cpusvn,omitempty"`
	PCKPCESVN    *uint16     `json:"pck_pcesvn,omitempty"`
}

// readQuote reads a quote from a file or "-" (standard input), binary or
// as hex (with or without 0x) or base64 text.
func readQuote(e *env, path string) ([]byte, *dcap.Quote, error) {
	var raw []byte
	var err error
	if path == "-" {
		in := e.stdin
		if in == nil {
			in = strings.NewReader("")
		}
		raw, err = io.ReadAll(io.LimitReader(in, 1<<20))
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, nil, err
	}
	q, err := parseAnyQuote(raw)
	if err == nil {
		return raw, q, nil
	}
	if dec := decodeText(raw); dec != nil {
		if q, derr := parseAnyQuote(dec); derr == nil {
			return dec, q, nil
		}
		raw = dec
	}
	// A quote in a larger buffer padded with zeros (as a TD's quote
	// buffer is captured): the zeros are dropped, and said so.
	if n, lerr := dcap.QuoteLength(raw); lerr == nil && n < len(raw) && bytes.Count(raw[n:], []byte{0}) == len(raw)-n {
		if q, perr := parseAnyQuote(raw[:n]); perr == nil {
			fmt.Fprintf(e.stderr, "note: %s: ignoring %d bytes of zero padding after the quote\n", path, len(raw)-n)
			return raw[:n], q, nil
		}
	}
	return nil, nil, fmt.Errorf("%s: %w", path, err)
}

// parseAnyQuote parses an SGX quote, or else a TDX (TD) quote.
func parseAnyQuote(b []byte) (*dcap.Quote, error) {
	q, err := dcap.ParseQuote(b)
	if err != nil && len(b) >= 8 && binary.LittleEndian.Uint32(b[4:]) == dcap.TEETypeTDX {
		return dcap.ParseTDQuote(b)
	}
	return q, err
}

// refuseTD refuses a TD quote where only SGX quotes can be verified (dcap
// refuses it too, but with a format error on some paths).
func refuseTD(path string, q *dcap.Quote) error {
	if q.TD != nil {
		return fmt.Errorf("%s: a TDX quote: it verifies with TDX collateral only (a bundle, files, or --pccs/--pcs), not --no-collateral; magectl quote show decodes it", path)
	}
	return nil
}

// tdView is a TD quote's body, for quote show.
type tdView struct {
	TEETCBSVN      string    `json:"tee_tcb_svn"`
	MRSEAM         string    `json:"mrseam"`
	MRSignerSEAM   string    `json:"mrsigner_seam"`
	SEAMAttributes string    `json:"seam_attributes"`
	TDAttributes   string    `json:"td_attributes"`
	XFAM           string    `json:"xfam"`
	MRTD           string    `json:"mrtd"`
	MRConfigID     string    `json:"mrconfigid"`
	MROwner        string    `json:"mrowner"`
	MROwnerConfig  string    `json:"mrownerconfig"`
	RTMRs          [4]string `json:"rtmrs"`
	ReportData     string    `json:"report_data"`
}

func viewTD(t *dcap.TDReportBody) *tdView {
	h := hex.EncodeToString
	v := &tdView{TEETCBSVN: h(t.TEETCBSVN[:]), MRSEAM: h(t.MRSEAM[:]), MRSignerSEAM: h(t.MRSignerSEAM[:]),
		SEAMAttributes: fmt.Sprintf("%#016x", t.SEAMAttributes), TDAttributes: fmt.Sprintf("%#016x", t.TDAttributes), XFAM: fmt.Sprintf("%#016x", t.XFAM),
		MRTD: h(t.MRTD[:]), MRConfigID: h(t.MRConfigID[:]), MROwner: h(t.MROwner[:]), MROwnerConfig: h(t.MROwnerConfig[:]), ReportData: h(t.ReportData[:])}
	for i := range t.RTMR {
		v.RTMRs[i] = h(t.RTMR[i][:])
	}
	return v
}

// decodeText decodes hex (optionally 0x-prefixed) or base64 text, or
// returns nil.
func decodeText(raw []byte) []byte {
	t := strings.TrimSpace(string(raw))
	t = strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	if b, err := hex.DecodeString(t); err == nil {
		return b
	}
	t = strings.Join(strings.Fields(t), "")
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(t); err == nil {
			return b
		}
	}
	return nil
}

func runQuoteShow(e *env, args []string) error {
	fs := newFlagSet(e, "quote show", "quote show QUOTE [--json]\n\nPrints a quote's fields. Nothing is verified: use \"magectl quote verify\".")
	jsonOut := fs.Bool("json", false, "print JSON instead of text")
	arg, err := parseQuoteArgs(fs, args)
	if err != nil {
		return err
	}
	_, q, err := readQuote(e, arg)
	if err != nil {
		return err
	}
	h := &q.Header
	v := quoteView{
		Version: h.Version, AttKeyType: h.AttKeyType, TEEType: h.TEEType, QESVN: h.QESVN, PCESVN: h.PCESVN,
		QEVendorID: hex.EncodeToString(h.QEVendorID[:]), UserData: hex.EncodeToString(h.UserData[:]),
		QE: viewReport(&q.QEReport), QEAuthData: hex.EncodeToString(q.QEAuthData),
		AttestKey: hex.EncodeToString(q.AttestKey[:]), CertDataType: q.Certification.Type,
	}
	if id, err := q.Certification.PCKIdentifier(); err == nil {
		v.PPID, v.PCKCPUSVN, v.PCKPCESVN = hex.EncodeToString(id.PPID), hex.EncodeToString(id.CPUSVN[:]), &id.PCESVN
		if id.HasPCEID {
			v.PCEID = hex.EncodeToString(id.PCEID[:])
		}
	}
	if chain, err := q.PCKChain(); err == nil {
		for _, c := range chain {
			v.PCKChain = append(v.PCKChain, c.Subject.CommonName)
		}
		if x, err := dcap.ParsePCKExtensions(chain[0]); err == nil {
			v.FMSPC = strings.ToUpper(hex.EncodeToString(x.FMSPC[:]))
			v.PCEID = hex.EncodeToString(x.PCEID[:])
			v.PCKCPUSVN, v.PCKPCESVN = hex.EncodeToString(x.CPUSVN[:]), &x.PCESVN
		}
	}
	if q.TD != nil {
		v.TD = viewTD(q.TD)
	} else {
		enc := viewReport(&q.Body)
		v.Enclave = &enc
	}
	if *jsonOut {
		return writeJSON(e.stdout, v)
	}
	w := e.stdout
	fmt.Fprintf(w, "quote v%d  att_key_type %d  tee_type %#x  qe_svn %d  pce_svn %d  qe_vendor %s\n", v.Version, v.AttKeyType, v.TEEType, v.QESVN, v.PCESVN, v.QEVendorID)
	if td := v.TD; td != nil {
		fmt.Fprintf(w, "TD       MRTD      %s\n         RTMR0..3  %s\n                   %s\n                   %s\n                   %s\n", td.MRTD, td.RTMRs[0], td.RTMRs[1], td.RTMRs[2], td.RTMRs[3])
		fmt.Fprintf(w, "         MRCONFIGID %s\n         MRSEAM    %s\n         TD attributes %s  XFAM %s  TEE_TCB_SVN %s\n         report_data %s\n",
			td.MRConfigID, td.MRSEAM, td.TDAttributes, td.XFAM, td.TEETCBSVN, td.ReportData)
	}
	type namedView struct {
		name string
		v    *reportView
	}
	var views []namedView
	if v.Enclave != nil {
		views = append(views, namedView{"enclave", v.Enclave})
	}
	for _, r := range append(views, namedView{"QE", &v.QE}) {
		id := r.v.Identity
		fmt.Fprintf(w, "%-8s MRENCLAVE %s\n         MRSIGNER  %s\n         ISVPRODID %d  ISVSVN %d  MISCSELECT %#x  %s  debug %t\n",
			r.name, id.MRENCLAVE, id.MRSIGNER, id.ISVProdID, id.ISVSVN, id.MiscSelect, id.Attributes, r.v.Debug)
		fmt.Fprintf(w, "         CPUSVN %s  CONFIGSVN %d\n         report_data %s\n", r.v.CPUSVN, id.ConfigSVN, r.v.ReportData)
	}
	fmt.Fprintf(w, "certification data type %d", v.CertDataType)
	if v.PCKChain != nil {
		fmt.Fprintf(w, ": %s", strings.Join(v.PCKChain, " <- "))
	}
	if v.FMSPC != "" {
		fmt.Fprintf(w, " (FMSPC %s)", v.FMSPC)
	}
	if v.PPID != "" {
		fmt.Fprintf(w, ": PPID %s, CPUSVN %s, PCESVN %d (PCK certificate not included)", v.PPID, v.PCKCPUSVN, *v.PCKPCESVN)
	}
	fmt.Fprintln(w)
	return nil
}

// parseQuoteArgs parses flags on either side of the one QUOTE argument;
// -h/--help anywhere prints the help (exit 0).
func parseQuoteArgs(fs *flag.FlagSet, args []string) (string, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.Usage()
			return "", errHelpShown
		}
	}
	return parseOneArg(fs, args, "quote file")
}

// readCert reads one certificate, PEM or DER.
func readCert(path string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(raw); blk != nil {
		raw = blk.Bytes
	}
	c, err := x509.ParseCertificate(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func readChain(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := dcap.ParseCertChain(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

var acceptableStatuses = []dcap.TCBStatus{dcap.UpToDate, dcap.SWHardeningNeeded, dcap.ConfigurationNeeded, dcap.ConfigurationAndSWHardeningNeeded, dcap.OutOfDate, dcap.OutOfDateConfigurationNeeded}

func statusList() string {
	var s []string
	for _, st := range acceptableStatuses {
		s = append(s, string(st))
	}
	return strings.Join(s, ", ")
}

func runQuoteVerify(e *env, args []string) error {
	fs := newFlagSet(e, "quote verify", `quote verify QUOTE (--collateral BUNDLE.json | --tcb-info F --qe-identity F --pck-crl F --root-crl F --tcb-info-issuer-chain F [...] | --no-collateral --root ROOT) [--root ROOT] [--pck-chain F] [--time RFC3339] [--accept STATUS,...] [--json]

Verifies a DCAP quote: the PCK chain to the root (pinned by public key),
the QE report signature and binding, the quote signature and, with
collateral, the CRLs, TCB Info, QE Identity, the TCB level and the QE
identity, then accepts the TCB status by --accept. Exit 1 if a check fails.`)
	bundle := fs.String("collateral", "", "collateral bundle `file`: JSON with tcb_info, tcb_info_signature, tcb_info_issuer_chain, qe_identity, qe_identity_signature, qe_identity_issuer_chain, pck_crl, root_ca_crl[, pck_crl_issuer_chain]")
	tcbInfo := fs.String("tcb-info", "", "TCB Info `file` as Intel's PCS returns it ({\"tcbInfo\":...,\"signature\":...})")
	qeID := fs.String("qe-identity", "", "QE Identity `file` as Intel's PCS returns it ({\"enclaveIdentity\":...,\"signature\":...})")
	pckCRL := fs.String("pck-crl", "", "PCK Platform/Processor CA CRL `file` (DER, PEM or hex)")
	rootCRL := fs.String("root-crl", "", "Intel SGX Root CA CRL `file` (DER, PEM or hex)")
	tcbChain := fs.String("tcb-info-issuer-chain", "", "TCB Info issuer chain `file` (PEM, or the URL-encoded PEM of the PCS header)")
	qeChain := fs.String("qe-identity-issuer-chain", "", "QE Identity issuer chain `file` (default: the TCB Info issuer chain)")
	pckCRLChain := fs.String("pck-crl-issuer-chain", "", "PCK CRL issuer chain `file` (optional; checked to be the PCK certificate's CA when given)")
	pckChain := fs.String("pck-chain", "", "PCK certificate chain `file` (PEM) to use instead of the quote's; required for certification data types 1-3")
	noCol := fs.Bool("no-collateral", false, "verify the quote's signatures and PCK chain only (WEAKER: no revocation, TCB level or QE identity check); needs --root")
	rootFile := fs.String("root", "", "trusted root CA certificate `file`, PEM or DER, pinned by its public key (default: the Intel SGX Root CA)")
	at := fs.String("time", "", "verification `time`, RFC 3339 (default: now)")
	accept := fs.String("accept", string(dcap.UpToDate), "acceptable TCB `statuses`, comma-separated, of "+statusList())
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	src := addPCSFlags(fs)
	val := addValidateFlags(fs)
	arg, err := parseQuoteArgs(fs, args)
	if err != nil {
		return err
	}
	vopts, err := val.options()
	if err != nil {
		return err
	}
	var acc []dcap.TCBStatus
	for _, s := range strings.Split(*accept, ",") {
		st := dcap.TCBStatus(strings.TrimSpace(s))
		if !slices.Contains(acceptableStatuses, st) {
			return usagef("--accept: unknown or unacceptable TCB status %q (want %s)", st, statusList())
		}
		acc = append(acc, st)
	}
	var when time.Time
	if *at != "" {
		if when, err = time.Parse(time.RFC3339, *at); err != nil {
			return usagef("--time: %v", err)
		}
	}
	files := *tcbInfo != "" || *qeID != "" || *pckCRL != "" || *rootCRL != "" || *tcbChain != "" || *qeChain != "" || *pckCRLChain != ""
	fetch := src.set()
	switch {
	case *noCol && (*bundle != "" || files || fetch):
		return usagef("--no-collateral excludes --collateral, --pccs/--pcs and the collateral files")
	case *noCol && *rootFile == "":
		return usagef("--no-collateral needs --root: the trust anchor must be chosen explicitly")
	case (*bundle != "") && files, fetch && (*bundle != "" || files):
		return usagef("give one of --collateral, --pccs/--pcs, or the collateral files")
	case !*noCol && !fetch && *bundle == "" && (*tcbInfo == "" || *qeID == "" || *pckCRL == "" || *rootCRL == "" || *tcbChain == ""):
		return usagef("give --collateral, --pccs URL (or --pcs), or --tcb-info, --qe-identity, --pck-crl, --root-crl and --tcb-info-issuer-chain, or --no-collateral")
	}
	raw, q, err := readQuote(e, arg)
	if err != nil {
		return err
	}
	td := q.TD != nil
	if td && *noCol {
		return refuseTD(arg, q)
	}
	if td {
		var sgxOnly []string
		for _, f := range []string{"mrenclave", "mrsigner", "isvprodid", "min-isvsvn", "report-data", "allow-debug", "min-tcb-eval", "accept-advisory"} {
			if flagSet(fs, f) {
				sgxOnly = append(sgxOnly, "--"+f)
			}
		}
		if sgxOnly != nil {
			return usagef("%s: a TD quote: %s check an SGX enclave's report", arg, strings.Join(sgxOnly, ", "))
		}
	}
	var root *x509.Certificate
	if *rootFile != "" {
		if root, err = readCert(*rootFile); err != nil {
			return err
		}
	}
	var chain []*x509.Certificate
	if *pckChain != "" {
		if chain, err = readChain(*pckChain); err != nil {
			return err
		}
		if len(chain) < 2 {
			return usagef("--pck-chain %s holds only %d certificate: add the PCK CA certificate (Intel SGX PCK Processor or Platform CA) and the root", *pckChain, len(chain))
		}
	}
	var res *dcap.Result
	var verr error
	if *noCol {
		res, verr = dcap.VerifyWithoutCollateral(raw, dcap.SignatureOptions{Root: root, Time: when, PCKChain: chain})
	} else {
		var col *dcap.Collateral
		if fetch {
			cs, closeCache, err := src.source(when)
			if err != nil {
				return err
			}
			defer closeCache()
			if col, err = cs.Collateral(e.ctx, q); err != nil {
				return err
			}
		} else if col, err = loadCollateral(*bundle, *tcbInfo, *qeID, *pckCRL, *rootCRL, *tcbChain, *qeChain, *pckCRLChain); err != nil {
			return err
		}
		opts := dcap.Options{Root: root, Time: when, Accept: acc, PCKChain: chain}
		if td {
			res, verr = dcap.VerifyTD(raw, col, opts)
		} else {
			res, verr = dcap.Verify(raw, col, opts)
		}
	}
	if verr == nil && !td {
		verr = dcap.Validate(res, vopts)
	}
	if *jsonOut {
		// The enclave is a result only if the quote verified; otherwise
		// its claimed identity is shown apart, as unverified.
		out := struct {
			OK bool `json:"ok"`
			*dcap.Result
			Collateral bool        `json:"collateral_checked"`
			Enclave    *reportView `json:"enclave,omitempty"`
			Unverified *reportView `json:"unverified_enclave,omitempty"`
			TD         *tdView     `json:"td,omitempty"`
			UnverTD    *tdView     `json:"unverified_td,omitempty"`
			Error      string      `json:"error,omitempty"`
		}{OK: verr == nil, Result: res, Collateral: !*noCol}
		switch {
		case res.TD != nil && verr == nil:
			out.TD = viewTD(res.TD)
		case res.TD != nil:
			out.UnverTD = viewTD(res.TD)
		case res.Quote != nil:
			v := viewReport(&res.Enclave)
			if verr == nil {
				out.Enclave = &v
			} else {
				out.Unverified = &v
			}
		}
		if verr != nil {
			out.Error = verr.Error()
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		for _, c := range res.Checks {
			fmt.Fprintf(e.stdout, "%-4s %-22s %s\n", c.Status, c.Name, c.Detail)
		}
		if res.TCBStatus != "" {
			fmt.Fprintf(e.stdout, "TCB status %s (platform %s, QE %s), advisories [%s]\n", res.TCBStatus, res.PlatformTCB, res.QETCB, strings.Join(res.AdvisoryIDs, ", "))
		}
		if *noCol {
			fmt.Fprintln(e.stdout, "WARNING: signatures only; revocation, TCB level and QE identity were not checked")
		}
		if res.TD != nil && verr == nil {
			fmt.Fprintf(e.stdout, "TD MRTD %x\n   RTMR0 %x\n   RTMR1 %x\n   RTMR2 %x\n   RTMR3 %x\n   TDATTRIBUTES %#016x (debug %t)\n", res.TD.MRTD, res.TD.RTMR[0], res.TD.RTMR[1], res.TD.RTMR[2], res.TD.RTMR[3], res.TD.TDAttributes, res.TD.TDAttributes&dcap.TDAttrDebug != 0)
		} else if res.Quote != nil && verr == nil {
			fmt.Fprintf(e.stdout, "enclave MRENCLAVE %s MRSIGNER %s ISVPRODID %d ISVSVN %d debug %t\n", res.Enclave.MRENCLAVE, res.Enclave.MRSIGNER, res.Enclave.ISVProdID, res.Enclave.ISVSVN, res.Enclave.Attributes.Debug())
		}
	}
	if verr != nil {
		return failed(verr)
	}
	return nil
}

// loadCollateral reads a bundle, or the PCS files.
func loadCollateral(bundle, tcbInfo, qeID, pckCRL, rootCRL, tcbChain, qeChain, pckCRLChain string) (*dcap.Collateral, error) {
	if bundle != "" {
		b, err := os.ReadFile(bundle)
		if err != nil {
			return nil, err
		}
		col, err := dcap.ParseCollateralBundle(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bundle, err)
		}
		return col, nil
	}
	col := &dcap.Collateral{}
	for _, x := range []struct {
		path      string
		body, sig *[]byte
	}{{tcbInfo, &col.TCBInfo, &col.TCBInfoSignature}, {qeID, &col.QEIdentity, &col.QEIdentitySignature}} {
		b, err := os.ReadFile(x.path)
		if err != nil {
			return nil, err
		}
		if *x.body, *x.sig, err = dcap.ParseSignedJSON(b); err != nil {
			return nil, fmt.Errorf("%s: %w", x.path, err)
		}
		if *x.sig == nil {
			return nil, fmt.Errorf("%s: want a PCS response with its \"signature\"", x.path)
		}
	}
	for _, x := range []struct {
		path string
		dst  **x509.RevocationList
	}{{pckCRL, &col.PCKCRL}, {rootCRL, &col.RootCACRL}} {
		b, err := os.ReadFile(x.path)
		if err != nil {
			return nil, err
		}
		if *x.dst, err = dcap.ParseCRL(b); err != nil {
			return nil, fmt.Errorf("%s: %w", x.path, err)
		}
	}
	if qeChain == "" {
		qeChain = tcbChain
	}
	for _, x := range []struct {
		path string
		dst  *[]*x509.Certificate
	}{{tcbChain, &col.TCBInfoIssuerChain}, {qeChain, &col.QEIdentityIssuerChain}, {pckCRLChain, &col.PCKCRLIssuerChain}} {
		if x.path == "" {
			continue
		}
		c, err := readChain(x.path)
		if err != nil {
			return nil, err
		}
		*x.dst = c
	}
	return col, nil
}

// pcsFlags choose where collateral is fetched from.
type pcsFlags struct {
	pccs   *string
	pcs    *bool
	cache  *string
	update *string
	http   *bool
}

func addPCSFlags(fs *flag.FlagSet) *pcsFlags {
	return &pcsFlags{
		pccs:   fs.String("pccs", "", "fetch collateral from the PCCS (or PCS) API at `URL` (base ending in /sgx/certification/v4)"),
		pcs:    fs.Bool("pcs", false, "fetch collateral from Intel's PCS ("+dcap.IntelPCS+")"),
		cache:  fs.String("cache", "", "keep fetched collateral in `DIR` and reuse it until it expires"),
		update: fs.String("update", "standard", "TCB data to fetch: `standard` or early"),
		http:   fs.Bool("insecure-http", false, "allow a plain http:// --pccs URL (INSECURE: anyone on the path can withhold collateral or answer for the PCCS; for a trusted local PCCS)"),
	}
}

func (p *pcsFlags) set() bool { return *p.pccs != "" || *p.pcs }

// source returns the collateral source the flags name, and a function to
// call when done with it.
// at, if not zero, is the time the collateral is judged at (--time): the
// cache keeps items valid then.
func (p *pcsFlags) source(at time.Time) (dcap.CollateralSource, func(), error) {
	if *p.pccs != "" && *p.pcs {
		return nil, nil, usagef("give --pccs or --pcs, not both")
	}
	u := dcap.Update(*p.update)
	if u != dcap.UpdateStandard && u != dcap.UpdateEarly {
		return nil, nil, usagef("--update %q: want standard or early", *p.update)
	}
	pcs := &dcap.PCS{BaseURL: *p.pccs, Update: u, InsecureHTTP: *p.http}
	if *p.cache == "" {
		return pcs, func() {}, nil
	}
	c := &dcap.Cache{PCS: pcs, Dir: *p.cache}
	if !at.IsZero() {
		c.Time = func() time.Time { return at }
	}
	return c, c.Close, nil
}

// validateFlags are the expected values of a quote (dcap.Validate).
type validateFlags struct {
	mrenclave, mrsigner, reportData, advisories, isvprodid *string
	minISVSVN, minTCBEval                                  *uint
	allowDebug                                             *bool
}

func addValidateFlags(fs *flag.FlagSet) *validateFlags {
	return &validateFlags{
		mrenclave:  fs.String("mrenclave", "", "expected `MRENCLAVE` (hex; several comma-separated)"),
		mrsigner:   fs.String("mrsigner", "", "expected `MRSIGNER` (hex; several comma-separated)"),
		isvprodid:  fs.String("isvprodid", "", "expected `ISVPRODID`"),
		minISVSVN:  fs.Uint("min-isvsvn", 0, "lowest acceptable `ISVSVN`"),
		reportData: fs.String("report-data", "", "expected report data (`hex`): all 64 bytes, or a prefix if shorter"),
		allowDebug: fs.Bool("allow-debug", false, "accept a DEBUG enclave (its host can read its memory)"),
		minTCBEval: fs.Uint("min-tcb-eval", 0, "lowest acceptable tcbEvaluationDataNumber"),
		advisories: fs.String("accept-advisory", "", "with a status other than UpToDate, accept only these advisory `IDs` (comma-separated)"),
	}
}

func (v *validateFlags) options() (dcap.ValidateOptions, error) {
	o := dcap.ValidateOptions{MinISVSVN: uint16(*v.minISVSVN), AllowDebug: *v.allowDebug, MinTCBEvaluationDataNumber: uint32(*v.minTCBEval)}
	if *v.minISVSVN > 0xffff {
		return o, usagef("--min-isvsvn %d is over 65535", *v.minISVSVN)
	}
	for _, m := range []struct {
		flag string
		s    string
		dst  *[]sgx.Measurement
	}{{"--mrenclave", *v.mrenclave, &o.MRENCLAVE}, {"--mrsigner", *v.mrsigner, &o.MRSIGNER}} {
		for _, x := range strings.Split(m.s, ",") {
			if x = strings.TrimSpace(x); x == "" {
				continue
			}
			mr, err := sgx.ParseMeasurement(x)
			if err != nil {
				return o, usagef("%s: %v", m.flag, err)
			}
			*m.dst = append(*m.dst, mr)
		}
	}
	if *v.isvprodid != "" {
		n, err := strconv.ParseUint(*v.isvprodid, 0, 16)
		if err != nil {
			return o, usagef("--isvprodid %q: want a number up to 65535", *v.isvprodid)
		}
		p := uint16(n)
		o.ISVProdID = &p
	}
	if *v.reportData != "" {
		rd, err := hex.DecodeString(strings.TrimPrefix(*v.reportData, "0x"))
		if err != nil || len(rd) > 64 {
			return o, usagef("--report-data: want up to 64 bytes of hex")
		}
		if len(rd) == 64 {
			o.ReportData = rd
		} else {
			o.ReportDataPrefix = rd
		}
	}
	if *v.advisories != "" {
		o.AcceptAdvisories = []string{}
		for _, a := range strings.Split(*v.advisories, ",") {
			if a = strings.TrimSpace(a); a != "" {
				o.AcceptAdvisories = append(o.AcceptAdvisories, a)
			}
		}
	}
	return o, nil
}

// ---- magectl collateral ----

func runCollateral(e *env, args []string) error {
	return dispatch(e, args, "collateral", `Usage: magectl collateral fetch QUOTE (--pccs URL | --pcs) --out BUNDLE.json

  fetch QUOTE   fetch the collateral a quote needs (TCB Info for its
                FMSPC, QE Identity, its PCK CA's CRL, the root CA CRL)
                into a bundle that "quote verify --collateral" reads,
                for verification without network access

Run "magectl collateral fetch --help" for flags.
`, map[string]func(*env, []string) error{"fetch": runCollateralFetch})
}

func runCollateralFetch(e *env, args []string) error {
	fs := newFlagSet(e, "collateral fetch", "collateral fetch QUOTE (--pccs URL | --pcs) [--cache DIR] [--time T] --out BUNDLE.json")
	src := addPCSFlags(fs)
	out := fs.String("out", "", "write the bundle to `file` (\"-\": standard output)")
	force := fs.Bool("force", false, "overwrite an existing bundle")
	at := fs.String("time", "", "the `time`, RFC 3339, at which the collateral must be valid to be kept (default: now): a PCCS's older collateral can then be bundled to verify old quotes")
	arg, err := parseQuoteArgs(fs, args)
	if err != nil {
		return err
	}
	var when time.Time
	if *at != "" {
		if when, err = time.Parse(time.RFC3339, *at); err != nil {
			return usagef("--time: %v", err)
		}
	}
	if *out == "" {
		return usagef("--out is required")
	}
	if !src.set() {
		return usagef("give --pccs URL or --pcs")
	}
	if err := checkOutputs([]string{arg}, []string{*out}); err != nil {
		return err
	}
	_, q, err := readQuote(e, arg)
	if err != nil {
		return err
	}
	cs, closeCache, err := src.source(when)
	if err != nil {
		return err
	}
	defer closeCache()
	col, err := cs.Collateral(e.ctx, q)
	if err != nil {
		return err
	}
	b, err := col.MarshalBundle()
	if err != nil {
		return err
	}
	return e.writeOutput(*out, b, 0o644, *force)
}
